package ingesta_test

import (
	"slices"
	"strings"
	"testing"

	"example.invalid/ingesta/sdk/go/ingesta"
	"example.invalid/ingesta/sdk/go/ingestatest"
)

func sample() *ingestatest.Batch {
	return ingestatest.NewBatch("user-activity", 3).
		AtOffset(100).
		Add(ingestatest.NewRecord("k1", `{"n":1}`).
			HeaderString("trace-id", "abc").
			Header("empty", nil).
			HeaderString("trace-id", "def").
			Timestamp(1_732_460_000_000, ingesta.CreateTime)).
		Add(ingestatest.NewRecord(ingesta.Null, ingesta.Null)).
		Add(ingestatest.NewRecord([]byte{0xff, 0xfe}, "x").Timestamp(42, ingesta.LogAppendTime))
}

func get(t *testing.T, b ingesta.Batch, i int) ingesta.Record {
	t.Helper()
	r, ok := b.Get(i)
	if !ok {
		t.Fatalf("no record %d", i)
	}
	return r
}

func TestBatchExposesTopicPartitionAndRecords(t *testing.T) {
	b := sample().AsBatch()
	if b.Topic() != "user-activity" || b.Partition() != 3 || b.Len() != 3 {
		t.Fatalf("batch %v", b)
	}
	if first, ok := b.FirstOffset(); !ok || first != 100 {
		t.Errorf("first offset %d %v", first, ok)
	}
	if last, ok := b.LastOffset(); !ok || last != 102 {
		t.Errorf("last offset %d %v", last, ok)
	}
	var offsets []int64
	var indices []int
	for r := range b.Records() {
		offsets = append(offsets, r.Offset())
		indices = append(indices, r.Index())
	}
	if !slices.Equal(offsets, []int64{100, 101, 102}) || !slices.Equal(indices, []int{0, 1, 2}) {
		t.Errorf("offsets %v indices %v", offsets, indices)
	}
	if _, ok := b.Get(3); ok {
		t.Error("record 3 of 3")
	}
	if _, ok := b.Get(-1); ok {
		t.Error("record -1")
	}
	var empty ingesta.Batch
	if _, ok := empty.FirstOffset(); ok || empty.Len() != 0 {
		t.Error("zero batch is not empty")
	}
}

func TestRecordResolvesKeyValueSpans(t *testing.T) {
	r := get(t, sample().AsBatch(), 0)
	if r.Topic() != "user-activity" || r.Partition() != 3 {
		t.Errorf("record %v", r)
	}
	if string(r.Key()) != "k1" || string(r.Value()) != `{"n":1}` {
		t.Errorf("key %q value %q", r.Key(), r.Value())
	}
	if k, err := r.KeyString(); err != nil || k != "k1" {
		t.Errorf("KeyString %q %v", k, err)
	}
}

func TestNullKeyAndValue(t *testing.T) {
	r := get(t, sample().AsBatch(), 1)
	if r.Key() != nil || r.Value() != nil || r.HeaderCount() != 0 {
		t.Fatalf("key %v value %v headers %d", r.Key(), r.Value(), r.HeaderCount())
	}
	_, err := r.ValueString()
	e := ingesta.AsError(err)
	if e.IsRetryable() || e.Message() != "value is null (topic user-activity, partition 3, offset 101)" {
		t.Errorf("error %v", err)
	}
	if i, ok := e.RecordIndex(); !ok || i != 1 {
		t.Errorf("record index %d %v", i, ok)
	}
	_, err = r.KeyString()
	if ingesta.AsError(err).Message() != "key is null (topic user-activity, partition 3, offset 101)" {
		t.Errorf("error %v", err)
	}
}

func TestEmptyIsNotNull(t *testing.T) {
	b := ingestatest.NewBatch("t", 0).Add(ingestatest.NewRecord("", []byte{}).HeaderString("h", "")).AsBatch()
	r := get(t, b, 0)
	if r.Key() == nil || len(r.Key()) != 0 || r.Value() == nil || r.Header("h") == nil {
		t.Errorf("empty key %v value %v header %v", r.Key(), r.Value(), r.Header("h"))
	}
}

func TestNonUTF8TextIsAPermanentError(t *testing.T) {
	r := get(t, sample().AsBatch(), 2)
	_, err := r.KeyString()
	e := ingesta.AsError(err)
	if e.IsRetryable() {
		t.Error("retryable")
	}
	if i, _ := e.RecordIndex(); i != 2 {
		t.Errorf("index %d", i)
	}
	if !strings.HasPrefix(e.Message(), "key is not UTF-8: invalid utf-8") ||
		!strings.HasSuffix(e.Message(), "(topic user-activity, partition 3, offset 102)") {
		t.Errorf("message %q", e.Message())
	}
}

func TestTimestampsFollowTheirType(t *testing.T) {
	b := sample().AsBatch()
	cases := []struct {
		ts  int64
		ok  bool
		typ ingesta.TimestampType
	}{{1_732_460_000_000, true, ingesta.CreateTime}, {0, false, ingesta.NotAvailable}, {42, true, ingesta.LogAppendTime}}
	for i, c := range cases {
		r := get(t, b, i)
		ts, ok := r.Timestamp()
		if ts != c.ts || ok != c.ok || r.TimestampType() != c.typ {
			t.Errorf("record %d: %d %v %v", i, ts, ok, r.TimestampType())
		}
	}
	if ingesta.LogAppendTime.String() != "log_append_time" {
		t.Error(ingesta.LogAppendTime.String())
	}
}

func TestHeadersKeepOrderNullsAndDuplicates(t *testing.T) {
	r := get(t, sample().AsBatch(), 0)
	var got []string
	for name, value := range r.Headers() {
		if value == nil {
			got = append(got, name+"=<null>")
		} else {
			got = append(got, name+"="+string(value))
		}
	}
	if !slices.Equal(got, []string{"trace-id=abc", "empty=<null>", "trace-id=def"}) {
		t.Errorf("headers %v", got)
	}
	if string(r.Header("trace-id")) != "def" {
		t.Error("the last header does not win")
	}
	if r.Header("empty") != nil || r.Header("missing") != nil {
		t.Error("null or missing header has a value")
	}
	// Stopping early stops the iteration.
	n := 0
	for range r.Headers() {
		n++
		break
	}
	if n != 1 {
		t.Error("break ignored")
	}
}

func TestDecodeJSON(t *testing.T) {
	var n struct{ N int }
	if err := get(t, sample().AsBatch(), 0).DecodeJSON(&n); err != nil || n.N != 1 {
		t.Errorf("decoded %v, %v", n, err)
	}
	r := get(t, ingestatest.NewBatch("t", 7).AtOffset(9).AddValues("{oops").AsBatch(), 0)
	e := ingesta.AsError(r.DecodeJSON(&n))
	if !strings.HasPrefix(e.Message(), "value is not valid JSON: ") ||
		!strings.HasSuffix(e.Message(), "(topic t, partition 7, offset 9)") {
		t.Errorf("message %q", e.Message())
	}
	if i, ok := e.RecordIndex(); !ok || i != 0 {
		t.Error("no record index")
	}
	r = get(t, ingestatest.NewBatch("t", 7).Add(ingestatest.NewRecord(ingesta.Null, ingesta.Null)).AsBatch(), 0)
	if e := ingesta.AsError(r.DecodeJSON(&n)); e.Message() != "value is null (topic t, partition 7, offset 0)" {
		t.Errorf("message %q", e.Message())
	}
}

func TestForEachMarksTheFailingRecord(t *testing.T) {
	b := ingestatest.NewBatch("t", 0).AddValues("a", "b", "c").AsBatch()
	var seen []string
	err := b.ForEach(func(r ingesta.Record) error {
		seen = append(seen, string(r.Value()))
		if string(r.Value()) == "b" {
			return ingesta.Retryable("b failed")
		}
		return nil
	})
	e := ingesta.AsError(err)
	if i, _ := e.RecordIndex(); i != 1 || !e.IsRetryable() || len(seen) != 2 {
		t.Errorf("error %v after %v", err, seen)
	}
}
