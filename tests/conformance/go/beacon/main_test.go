package main

import (
	"reflect"
	"testing"

	"example.invalid/ingesta/sdk/go/ingesta"
	"example.invalid/ingesta/sdk/go/ingestatest"
)

func TestPublishesTheBodyUnchangedKeyedByXKey(t *testing.T) {
	ingestatest.Reset()
	ingestatest.SetConfig(map[string]string{"topic": "page-views"})
	body := []byte("{\"page\": \"/\",\n \"ms\": 12}")
	resp, out, err := ingestatest.RunRequest(&Beacon{}, ingesta.NewRequest("POST", "/", body).WithHeader("X-Key", []byte("user-7")))
	if err != nil || !reflect.DeepEqual(resp, ingesta.Accepted()) {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	want := []ingestatest.Emitted{{Topic: "page-views", Key: []byte("user-7"), Value: body}}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("out %+v", out)
	}
}

func TestWithoutXKeyTheKeyIsNullAndBytesPassUnchanged(t *testing.T) {
	ingestatest.Reset()
	ingestatest.SetConfig(map[string]string{"topic": "raw"})
	_, out, _ := ingestatest.RunRequest(&Beacon{}, ingesta.NewRequest("POST", "/any/path?x=1", []byte("hello")).WithHeader("x-other", []byte("1")))
	if len(out) != 1 || out[0].Key != nil || out[0].ValueString() != "hello" {
		t.Errorf("out %+v", out)
	}
	body := []byte{0, 0xff, 0xfe, '{', 0x80}
	_, out, _ = ingestatest.RunRequest(&Beacon{}, ingesta.NewRequest("PUT", "/", body).WithHeader("x-key", []byte{0xc3}))
	if !reflect.DeepEqual(out[0].Value, body) || !reflect.DeepEqual(out[0].Key, []byte{0xc3}) {
		t.Errorf("out %+v", out)
	}
	_, out, _ = ingestatest.RunRequest(&Beacon{}, ingesta.NewRequest("POST", "/", nil))
	if out[0].Value == nil || len(out[0].Value) != 0 {
		t.Error("an empty body is published as null")
	}
}

func TestTicksPublishTheirSequence(t *testing.T) {
	ingestatest.Reset()
	ingestatest.SetConfig(map[string]string{"topic": "beats"})
	b := &Beacon{}
	for i := range uint64(3) {
		out, err := ingestatest.RunTick(b, ingesta.Tick{Seq: i, ScheduledMs: 1, IntervalMs: 1000})
		want := []ingestatest.Emitted{{Topic: "beats", Key: []byte("tick"), Value: []byte("tick " + string(rune('0'+i)))}}
		if err != nil || !reflect.DeepEqual(out, want) {
			t.Errorf("tick %d: %+v %v", i, out, err)
		}
	}
}

func TestAMissingTopicIsAPermanentErrorNamingTheKey(t *testing.T) {
	ingestatest.Reset()
	ingestatest.SetConfig(map[string]string{"output_topic": "page-views"})
	_, _, err := ingestatest.RunRequest(&Beacon{}, ingesta.NewRequest("POST", "/", []byte("hello")))
	if e := ingesta.AsError(err); e == nil || e.IsRetryable() || e.Message() != "config key topic is not set" {
		t.Errorf("err %v", err)
	}
	_, err = ingestatest.RunTick(&Beacon{}, ingesta.Tick{})
	if e := ingesta.AsError(err); e == nil || e.Message() != "config key topic is not set" {
		t.Errorf("tick err %v", err)
	}
}
