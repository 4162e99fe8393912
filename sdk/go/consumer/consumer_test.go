package consumer_test

import (
	"reflect"
	"strings"
	"testing"

	"example.invalid/ingesta/sdk/go/consumer"
	"example.invalid/ingesta/sdk/go/ingesta"
	"example.invalid/ingesta/sdk/go/ingestatest"
)

// echo echoes values, counts records across calls, and fails on "boom".
type echo struct{ seen int }

func (e *echo) OnRecord(r ingesta.Record) error {
	e.seen++
	value, err := r.ValueString()
	if err != nil {
		return err
	}
	if value == "boom" {
		return ingesta.Retryable("exploded")
	}
	ingesta.Emit("echo", r.Key(), value)
	return nil
}

func values(out []ingestatest.Emitted) []string {
	var v []string
	for _, e := range out {
		v = append(v, e.ValueString())
	}
	return v
}

func TestRecordHandlerVisitsRecordsInOrder(t *testing.T) {
	ingestatest.Reset()
	out, err := ingestatest.Run(&echo{}, ingestatest.NewBatch("in", 0).AddValues("1", "2"))
	if err != nil || !reflect.DeepEqual(values(out), []string{"1", "2"}) {
		t.Errorf("out %v err %v", values(out), err)
	}
}

func TestRecordErrorBlamesItsIndexAndPublishesNothing(t *testing.T) {
	ingestatest.Reset()
	h := &echo{}
	out, err := ingestatest.Run(h, ingestatest.NewBatch("in", 0).AddValues("1", "boom", "3"))
	e := ingesta.AsError(err)
	if e == nil || !e.IsRetryable() || out != nil {
		t.Fatalf("err %v out %v", err, out)
	}
	if i, ok := e.RecordIndex(); !ok || i != 1 {
		t.Errorf("index %d", i)
	}
	if h.seen != 2 {
		t.Errorf("seen %d: did not stop at the first failure", h.seen)
	}
	// The next call does not see the failed call's output, and state survives.
	out, err = ingestatest.Run(h, ingestatest.NewBatch("in", 0).AddValues("4"))
	if err != nil || len(out) != 1 || h.seen != 3 {
		t.Errorf("out %v err %v seen %d", out, err, h.seen)
	}
}

func TestPlainErrorsArePermanentAndMarked(t *testing.T) {
	ingestatest.Reset()
	h := consumer.RecordFunc(func(r ingesta.Record) error {
		_, err := r.ValueString()
		return err
	})
	_, err := ingestatest.Run(h, ingestatest.NewBatch("in", 0).Add(ingestatest.NewRecord("a", []byte{0xff})))
	e := ingesta.AsError(err)
	if e.IsRetryable() || !strings.HasPrefix(e.Message(), "value is not UTF-8") {
		t.Errorf("err %v", err)
	}
	if i, _ := e.RecordIndex(); i != 0 {
		t.Error("no index")
	}
}

// both has OnRecord and OnBatch: OnBatch wins.
type both struct{}

func (both) OnRecord(ingesta.Record) error { panic("OnRecord called") }
func (both) OnBatch(b ingesta.Batch) error {
	ingesta.Emit("n", ingesta.Null, strings.Repeat("x", b.Len()))
	return nil
}

func TestBatchHandlerWinsAndSeesTheBatch(t *testing.T) {
	ingestatest.Reset()
	out, err := ingestatest.Run(both{}, ingestatest.NewBatch("in", 0).AddValues("a", "b", "c"))
	if err != nil || len(out) != 1 || out[0].ValueString() != "xxx" {
		t.Errorf("out %v err %v", out, err)
	}
}

func TestBatchErrorsPublishNothing(t *testing.T) {
	ingestatest.Reset()
	h := consumer.BatchFunc(func(b ingesta.Batch) error {
		ingesta.Emit("t", ingesta.Null, "lost")
		r, _ := b.Get(1)
		return r.Error("bad")
	})
	out, err := ingestatest.Run(h, ingestatest.NewBatch("in", 2).AtOffset(10).AddValues("a", "b"))
	e := ingesta.AsError(err)
	if out != nil || e.Message() != "bad (topic in, partition 2, offset 11)" {
		t.Errorf("out %v err %v", out, err)
	}
	if i, _ := e.RecordIndex(); i != 1 {
		t.Error("index")
	}
}

func TestNotAHandlerIsRefused(t *testing.T) {
	ingestatest.Reset()
	_, err := ingestatest.Run(struct{}{}, ingestatest.NewBatch("in", 0).AddValues("a"))
	if err == nil || !strings.Contains(err.Error(), "has neither OnRecord") {
		t.Errorf("err %v", err)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "consumer.Handle: struct {} has neither") {
			t.Errorf("panic %v", r)
		}
	}()
	consumer.Handle(struct{}{})
}

func TestRefusedOutputFailsTheCall(t *testing.T) {
	ingestatest.Reset()
	defer ingestatest.Reset()
	ingestatest.DenyTopic("echo")
	_, err := ingestatest.Run(&echo{}, ingestatest.NewBatch("in", 0).AddValues("a"))
	if e := ingesta.AsError(err); e == nil || e.IsRetryable() ||
		e.Message() != "emit refused: topic echo is not granted to this deployment" {
		t.Errorf("err %v", err)
	}
}
