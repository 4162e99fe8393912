package consumer

import (
	"testing"

	"example.invalid/ingesta/sdk/go/config"
	"example.invalid/ingesta/sdk/go/ingesta"
	"example.invalid/ingesta/sdk/go/internal/abi"
	"example.invalid/ingesta/sdk/go/internal/host"
)

type counter struct{ topic string }

func (c *counter) OnRecord(r ingesta.Record) error {
	ingesta.Emit(c.topic, ingesta.Null, r.Value())
	return nil
}

func rawBatch(values ...string) *abi.Batch {
	b := &abi.Batch{Topic: "in"}
	for i, v := range values {
		span := abi.Append(&b.Data, []byte(v))
		b.Records = abi.AppendRecordEntry(b.Records, abi.RecordEntry{Offset: int64(i), Value: span, HasValue: true})
	}
	return b
}

// The registered constructor runs on the first call (when config can be
// read), is retried after it fails, and its value is kept.
func TestHandleNewMakesTheHandlerOnceOnTheFirstCall(t *testing.T) {
	made := 0
	HandleNew(func() (Handler, error) {
		made++
		topic, err := config.Required("topic")
		if err != nil {
			return nil, err
		}
		return &counter{topic: topic}, nil
	})
	defer func() { registered = nil }()
	if made != 0 {
		t.Fatal("made at registration")
	}
	host.SetConfig(nil)
	err := serve(rawBatch("a"))
	if e := ingesta.AsError(err); e == nil || e.Message() != "config key topic is not set" {
		t.Fatalf("err %v", err)
	}
	host.SetConfig([][2]string{{"topic", "out"}})
	host.TakeEmitted()
	for range 2 {
		if err := serve(rawBatch("a", "b")); err != nil {
			t.Fatal(err)
		}
	}
	if made != 2 {
		t.Errorf("made %d times, want 2 (one failure, one success)", made)
	}
	if out := host.TakeEmitted(); len(out) != 2 || out[0].Topics[0] != "out" {
		t.Errorf("published %v", out)
	}
	defer func() {
		if recover() == nil {
			t.Error("a second registration did not panic")
		}
	}()
	HandleFunc(func(ingesta.Record) error { return nil })
}
