package main

import (
	"reflect"
	"testing"

	"example.invalid/ingesta/sdk/go/ingesta"
	"example.invalid/ingesta/sdk/go/ingestatest"
)

func setup(t *testing.T) {
	t.Helper()
	ingestatest.Reset()
	ingestatest.SetConfig(map[string]string{"output_topic": "out"})
}

func TestEchoDescribesTheRecord(t *testing.T) {
	setup(t)
	b := ingestatest.NewBatch("in", 4).AtOffset(17).
		Add(ingestatest.NewRecord("k", "hi <&>").
			HeaderString("a", "1").Header("n", nil).
			Timestamp(1732460000000, ingesta.CreateTime)).
		Add(ingestatest.NewRecord(ingesta.Null, "é\"\\").Timestamp(5, ingesta.LogAppendTime)).
		Add(ingestatest.NewRecord(ingesta.Null, ingesta.Null))
	out, err := ingestatest.Run(&Echo{}, b)
	if err != nil {
		t.Fatal(err)
	}
	want := []ingestatest.Emitted{
		{Topic: "out", Key: []byte("k"),
			Value:   []byte(`{"topic":"in","partition":4,"offset":17,"timestamp":1732460000000,"timestamp_type":"create","key":"k","value":"hi <&>","headers":[["a","1"],["n",null]],"greeting":"hello"}`),
			Headers: []ingesta.Header{{Name: "a", Value: []byte("1")}, {Name: "n"}, {Name: "echo-greeting", Value: []byte("hello")}}},
		{Topic: "out",
			Value:   []byte(`{"topic":"in","partition":4,"offset":18,"timestamp":5,"timestamp_type":"log_append","key":null,"value":"é\"\\","headers":[],"greeting":"hello"}`),
			Headers: []ingesta.Header{{Name: "echo-greeting", Value: []byte("hello")}}},
		{Topic: "out",
			Value:   []byte(`{"topic":"in","partition":4,"offset":19,"timestamp":null,"timestamp_type":null,"key":null,"value":null,"headers":[],"greeting":"hello"}`),
			Headers: []ingesta.Header{{Name: "echo-greeting", Value: []byte("hello")}}},
	}
	for i := range want {
		if !reflect.DeepEqual(out[i], want[i]) {
			t.Errorf("record %d\n got %s %+v\nwant %s %+v", i, out[i].Value, out[i], want[i].Value, want[i])
		}
	}
}

func TestGreetingAndMissingTopic(t *testing.T) {
	setup(t)
	ingestatest.SetConfig(map[string]string{"output_topic": "o", "greeting": "hey"})
	out, _ := ingestatest.Run(&Echo{}, ingestatest.NewBatch("in", 0).AddValues("x"))
	if string(out[0].Headers[0].Value) != "hey" || out[0].Topic != "o" {
		t.Errorf("out %+v", out)
	}
	ingestatest.SetConfig(nil)
	_, err := ingestatest.Run(&Echo{}, ingestatest.NewBatch("in", 0).AddValues("x"))
	if e := ingesta.AsError(err); e == nil || e.IsRetryable() || e.Message() != "config key output_topic is not set" {
		t.Errorf("err %v", err)
	}
}

func TestPermanentBlamesTheRecordAndPublishesNothing(t *testing.T) {
	setup(t)
	out, err := ingestatest.Run(&Echo{}, ingestatest.NewBatch("in", 0).AddValues("ok", "permanent:bad thing"))
	e := ingesta.AsError(err)
	if out != nil || e == nil || e.IsRetryable() || e.Message() != "bad thing" {
		t.Fatalf("out %v err %v", out, err)
	}
	if i, ok := e.RecordIndex(); !ok || i != 1 {
		t.Errorf("index %d", i)
	}
}

func TestRetryableCountsPerInstanceUntilN(t *testing.T) {
	setup(t)
	h := &Echo{}
	b := ingestatest.NewBatch("in", 0).AddValues("retryable:a:b:2")
	for _, want := range []string{"retry a:b (1 of 2)", "retry a:b (2 of 2)"} {
		_, err := ingestatest.Run(h, b)
		if e := ingesta.AsError(err); e == nil || !e.IsRetryable() || e.Message() != want {
			t.Fatalf("err %v, want %s", err, want)
		}
	}
	out, err := ingestatest.Run(h, b)
	if err != nil || len(out) != 1 {
		t.Fatalf("third call: %v %v", out, err)
	}
	if out, err := ingestatest.Run(h, ingestatest.NewBatch("in", 0).AddValues("retryable:z:0")); err != nil || len(out) != 1 {
		t.Errorf("n=0 echoes at once: %v", err)
	}
}

func TestLogThenEcho(t *testing.T) {
	setup(t)
	out, err := ingestatest.Run(&Echo{}, ingestatest.NewBatch("in", 0).AddValues("log:hello there"))
	logs := ingestatest.TakeLogs()
	if err != nil || len(out) != 1 || !reflect.DeepEqual(logs, []ingestatest.LogLine{{Level: ingesta.LevelInfo, Message: "hello there"}}) {
		t.Errorf("out %v logs %v err %v", out, logs, err)
	}
}
