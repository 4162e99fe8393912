package ingesta_test

import (
	"reflect"
	"strings"
	"testing"

	"example.invalid/ingesta/sdk/go/consumer"
	"example.invalid/ingesta/sdk/go/ingesta"
	"example.invalid/ingesta/sdk/go/ingestatest"
	"example.invalid/ingesta/sdk/go/internal/abi"
	"example.invalid/ingesta/sdk/go/internal/call"
	"example.invalid/ingesta/sdk/go/internal/host"
	"example.invalid/ingesta/sdk/go/internal/outbox"
)

// drain takes what the outbox holds, leaving it empty.
func drain() abi.Outbox {
	w := outbox.Current.Wire()
	out := abi.Outbox{
		Topics:  append([]string(nil), w.Topics...),
		Data:    append([]byte(nil), w.Data...),
		Records: append([]byte(nil), w.Records...),
		Headers: append([]byte(nil), w.Headers...),
	}
	outbox.Current.Discard()
	return out
}

// emitted runs fn as a call's body and returns what it published.
func emitted(t *testing.T, fn func() error) []ingestatest.Emitted {
	t.Helper()
	out, err := ingestatest.Run(consumer.BatchFunc(func(ingesta.Batch) error { return fn() }),
		ingestatest.NewBatch("in", 0).AddValues("x"))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func h(name string, value any) ingesta.Header {
	if value == nil {
		return ingesta.Header{Name: name}
	}
	return ingesta.Header{Name: name, Value: []byte(value.(string))}
}

func rec(topic string, key, value any, headers ...ingesta.Header) ingestatest.Emitted {
	b := func(v any) []byte {
		if v == nil {
			return nil
		}
		return []byte(v.(string))
	}
	return ingestatest.Emitted{Topic: topic, Key: b(key), Value: b(value), Headers: headers}
}

func TestPayloadsStringsBytesAndNull(t *testing.T) {
	type raw []byte
	out := emitted(t, func() error {
		ingesta.Emit("t", "str", []byte("bytes"))
		ingesta.Emit("t", ingesta.Null, raw("named"))
		ingesta.Emit("t", "", []byte{})
		ingesta.Emit("t", raw(nil), ingesta.Null)
		return nil
	})
	want := []ingestatest.Emitted{
		rec("t", "str", "bytes"), rec("t", nil, "named"), rec("t", "", ""), rec("t", nil, nil),
	}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("got %+v", out)
	}
}

func TestTopicsAreDeduplicatedInFirstUseOrder(t *testing.T) {
	outbox.Current.Discard()
	ingesta.Emit("a", "k1", "v1")
	ingesta.Emit("b", ingesta.Null, "v2")
	ingesta.Emit("a", "k3", ingesta.Null)
	w := drain()
	if !reflect.DeepEqual(w.Topics, []string{"a", "b"}) {
		t.Errorf("topics %v", w.Topics)
	}
	var topics []uint32
	for i := range len(w.Records) / abi.OutgoingEntrySize {
		e, _ := abi.ReadOutgoingEntry(w.Records, i)
		topics = append(topics, e.Topic)
	}
	if !reflect.DeepEqual(topics, []uint32{0, 1, 0}) {
		t.Errorf("topic indices %v", topics)
	}
}

func TestSpansPointIntoOneBuffer(t *testing.T) {
	outbox.Current.Discard()
	ingesta.Emit("t", "key", "value")
	ingesta.NewMessage("t").ValueString("v2").HeaderString("h", "hv").Emit()
	w := drain()
	if string(w.Data) != "keyvaluev2hhv" {
		t.Errorf("data %q", w.Data)
	}
	r, _ := abi.ReadOutgoingEntry(w.Records, 1)
	if r.HeaderStart != 0 || r.HeaderCount != 1 {
		t.Errorf("entry %+v", r)
	}
	he, _ := abi.ReadHeaderEntry(w.Headers, 0)
	if he.Name != (abi.Span{Start: 10, Len: 1}) || !he.HasValue || he.Value != (abi.Span{Start: 11, Len: 2}) {
		t.Errorf("header %+v", he)
	}
}

func TestMessageBuildsHeadersInOrder(t *testing.T) {
	out := emitted(t, func() error {
		ingesta.NewMessage("out").KeyString("k").Value([]byte("v")).
			HeaderString("a", "1").Header("nul", nil).Header("a", []byte("2")).Emit()
		ingesta.Emit("out", "k", "v", h("x", "y"), h("z", nil))
		ingesta.NewMessage("out").Emit()
		return nil
	})
	want := []ingestatest.Emitted{
		rec("out", "k", "v", h("a", "1"), h("nul", nil), h("a", "2")),
		rec("out", "k", "v", h("x", "y"), h("z", nil)),
		rec("out", nil, nil),
	}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("got %+v", out)
	}
}

func TestForwardCopiesKeyValueAndHeaders(t *testing.T) {
	batch := ingestatest.NewBatch("in", 0).
		Add(ingestatest.NewRecord("k", []byte{0, 159, 146, 150}).HeaderString("x", "1").Header("y", nil)).
		Add(ingestatest.NewRecord(ingesta.Null, ingesta.Null))
	out, err := ingestatest.Run(consumer.BatchFunc(func(b ingesta.Batch) error {
		for r := range b.Records() {
			ingesta.Forward("out", r)
		}
		r, _ := b.Get(0)
		ingesta.NewMessage("out2").ValueString("v").HeadersFrom(r).HeaderString("added", "z").Emit()
		return nil
	}), batch)
	if err != nil {
		t.Fatal(err)
	}
	want := []ingestatest.Emitted{
		{Topic: "out", Key: []byte("k"), Value: []byte{0, 159, 146, 150}, Headers: []ingesta.Header{h("x", "1"), h("y", nil)}},
		rec("out", nil, nil),
		rec("out2", nil, "v", h("x", "1"), h("y", nil), h("added", "z")),
	}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("got %+v", out)
	}
}

func TestEmitJSONWritesJSONAndRollsBackOnError(t *testing.T) {
	outbox.Current.Discard()
	type stat struct {
		ID   uint32 `json:"id"`
		Name string `json:"name"`
	}
	if err := ingesta.EmitJSON("t", "1", stat{1, "x"}); err != nil {
		t.Fatal(err)
	}
	err := ingesta.EmitJSON("t", "2", map[string]any{"f": func() {}})
	e := ingesta.AsError(err)
	if e == nil || e.IsRetryable() || !strings.HasPrefix(e.Message(), "cannot serialize a record for t: json: unsupported type") {
		t.Errorf("error %v", err)
	}
	w := drain()
	if string(w.Data) != `1{"id":1,"name":"x"}` || len(w.Records) != abi.OutgoingEntrySize {
		t.Errorf("data %q, %d entry bytes: trace of the failed record", w.Data, len(w.Records))
	}
}

func TestLargeOutputIsFlushedEarly(t *testing.T) {
	ingestatest.Reset()
	big := make([]byte, outbox.FlushThreshold/2+1)
	ingesta.Emit("t", ingesta.Null, big)
	if n := len(host.TakeEmitted()); n != 0 {
		t.Fatalf("flushed below the threshold: %d", n)
	}
	ingesta.Emit("t", ingesta.Null, big)
	flushed := host.TakeEmitted()
	if len(flushed) != 1 || len(flushed[0].Records) != 2*abi.OutgoingEntrySize {
		t.Fatalf("flushed %d outboxes", len(flushed))
	}
	if outbox.Current.BufferedBytes() != 0 {
		t.Error("buffers not reset after a flush")
	}
}

func TestRefusedFlushFailsTheCallAndDropsLaterRecords(t *testing.T) {
	ingestatest.Reset()
	defer ingestatest.DenyTopic("")
	ingestatest.DenyTopic("secret")
	ingesta.Emit("secret", ingesta.Null, make([]byte, outbox.FlushThreshold))
	ingesta.Emit("fine", ingesta.Null, "dropped")
	err := call.End(nil, true)
	e := ingesta.AsError(err)
	if e == nil || e.IsRetryable() || e.Message() != "emit refused: topic secret is not granted to this deployment" {
		t.Fatalf("error %v", err)
	}
	if n := len(host.TakeEmitted()); n != 0 {
		t.Fatalf("%d outboxes published", n)
	}
	// The next call starts clean.
	ingesta.Emit("fine", ingesta.Null, "kept")
	if err := call.End(nil, true); err != nil {
		t.Fatal(err)
	}
	if n := len(host.TakeEmitted()); n != 1 {
		t.Fatalf("%d outboxes published", n)
	}
}

func TestEmptyOutboxDoesNotCallTheHost(t *testing.T) {
	ingestatest.Reset()
	calls := 0
	prev := outbox.Current.SetSink(func(*abi.Outbox) *abi.EmitError { calls++; return nil })
	defer outbox.Current.SetSink(prev)
	if err := call.End(nil, true); err != nil || calls != 0 {
		t.Errorf("err %v, %d calls", err, calls)
	}
}

func TestRefusalsAreWorded(t *testing.T) {
	cases := map[abi.EmitError]string{
		{Kind: abi.TopicNotAllowed, Detail: "secret"}:      "emit refused: topic secret is not granted to this deployment",
		{Kind: abi.Malformed, Detail: "span out of range"}: "emit refused: malformed outbox: span out of range",
		{Kind: abi.LimitExceeded, Detail: "over 16 MiB"}:   "emit refused: output limit exceeded: over 16 MiB",
	}
	for e, want := range cases {
		if got := host.Refused(e); got != want {
			t.Errorf("got %q", got)
		}
	}
}
