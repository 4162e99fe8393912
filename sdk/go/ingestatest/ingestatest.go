// Package ingestatest runs handlers and producers natively, for unit tests
// with go test: it owns hand-made batches, requests and ticks, a stand-in
// host with fake configuration, and the capture of what a call published
// and logged.
//
//	func TestShouts(t *testing.T) {
//		ingestatest.Reset()
//		ingestatest.SetConfig(map[string]string{"some_key": "value"})
//		batch := ingestatest.NewBatch("words", 0).
//			AtOffset(100).
//			Add(ingestatest.NewRecord("k", "hi")).
//			Add(ingestatest.NewRecord("k", "yo").HeaderString("trace", "1"))
//		out, err := ingestatest.Run(Upper{}, batch)
//		if err != nil {
//			t.Fatal(err)
//		}
//		if got := out[0].ValueString(); got != "HI" {
//			t.Errorf("got %q", got)
//		}
//	}
//
// Run, RunRequest and RunTick behave like the runner: they return what the
// call published, or the call's error (and then publish nothing). The
// stand-in host's state (configuration, logs, a denied topic) is global to
// the test binary, so tests using this package must not run in parallel;
// call [Reset] at the start of each test.
//
// The package runs natively only: it compiles for wasip1 (so go vet works
// there), but its functions panic in a WebAssembly build.
package ingestatest

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"unicode/utf8"

	"example.invalid/ingesta/sdk/go/consumer"
	"example.invalid/ingesta/sdk/go/ingesta"
	"example.invalid/ingesta/sdk/go/internal/abi"
	"example.invalid/ingesta/sdk/go/internal/bridge"
	"example.invalid/ingesta/sdk/go/internal/call"
	"example.invalid/ingesta/sdk/go/internal/host"
	"example.invalid/ingesta/sdk/go/internal/outbox"
	"example.invalid/ingesta/sdk/go/producer"
)

// Batch is a batch assembled in memory, laid out exactly as the host sends
// one.
type Batch struct {
	raw     abi.Batch
	next    int64
	headers uint32
}

// NewBatch is an empty batch from topic/partition; records get offsets
// from 0.
func NewBatch(topic string, partition int32) *Batch {
	return &Batch{raw: abi.Batch{Topic: topic, Partition: partition}}
}

// AtOffset makes the next record added get offset (later ones count up
// from it).
func (b *Batch) AtOffset(offset int64) *Batch {
	b.next = offset
	return b
}

// Add appends records.
func (b *Batch) Add(records ...*Record) *Batch {
	for _, r := range records {
		b.add(r)
	}
	return b
}

// AddValues appends one record per value, with a null key, no headers and
// no timestamp.
func (b *Batch) AddValues(values ...string) *Batch {
	for _, v := range values {
		b.add(NewRecord(ingesta.Null, v))
	}
	return b
}

func (b *Batch) add(r *Record) {
	offset := b.next
	if r.offset != nil {
		offset = *r.offset
	}
	b.next = offset + 1
	raw := &b.raw
	start := b.headers
	for _, h := range r.headers {
		e := abi.HeaderEntry{Name: abi.Append(&raw.Data, []byte(h.Name)), HasValue: h.Value != nil}
		if h.Value != nil {
			e.Value = abi.Append(&raw.Data, h.Value)
		}
		raw.Headers = abi.AppendHeaderEntry(raw.Headers, e)
		b.headers++
	}
	e := abi.RecordEntry{
		Offset:      offset,
		HeaderStart: start,
		HeaderCount: b.headers - start,
		HasKey:      r.key != nil,
		HasValue:    r.value != nil,
	}
	if r.key != nil {
		e.Key = abi.Append(&raw.Data, r.key)
	}
	if r.value != nil {
		e.Value = abi.Append(&raw.Data, r.value)
	}
	switch r.tsType {
	case ingesta.CreateTime:
		e.TimestampKind, e.Timestamp = abi.CreateTime, r.ts
	case ingesta.LogAppendTime:
		e.TimestampKind, e.Timestamp = abi.LogAppend, r.ts
	}
	raw.Records = abi.AppendRecordEntry(raw.Records, e)
}

// AsBatch is the batch as a handler sees it, e.g. to call OnRecord
// directly.
func (b *Batch) AsBatch() ingesta.Batch {
	return bridge.NewBatch(&b.raw).(ingesta.Batch)
}

// Record is one record for a [Batch].
type Record struct {
	key, value []byte
	headers    []ingesta.Header
	ts         int64
	tsType     ingesta.TimestampType
	offset     *int64
}

// NewRecord is a record with this key and value: strings or byte slices,
// [ingesta.Null] (a nil slice) for null.
func NewRecord[K, V ingesta.Bytes](key K, value V) *Record {
	return &Record{key: owned(key), value: owned(value)}
}

// Header appends a header; a nil value is null.
func (r *Record) Header(name string, value []byte) *Record {
	r.headers = append(r.headers, ingesta.Header{Name: name, Value: value})
	return r
}

// HeaderString appends a header with a text value.
func (r *Record) HeaderString(name, value string) *Record {
	return r.Header(name, []byte(value))
}

// Timestamp sets the timestamp (ms since the Unix epoch) and its type.
func (r *Record) Timestamp(ms int64, typ ingesta.TimestampType) *Record {
	r.ts, r.tsType = ms, typ
	return r
}

// Offset overrides the offset (otherwise the batch assigns the next one).
func (r *Record) Offset(offset int64) *Record {
	r.offset = &offset
	return r
}

func owned[T ingesta.Bytes](p T) []byte {
	if len(p) == 0 {
		switch v := any(p).(type) {
		case []byte:
			if v == nil {
				return nil
			}
		}
		return []byte{}
	}
	return []byte(string(p))
}

// Emitted is a record a call published.
type Emitted struct {
	// Topic is the destination topic.
	Topic string
	// Key is the key bytes, nil for null.
	Key []byte
	// Value is the value bytes, nil for null.
	Value []byte
	// Headers are the headers in order, values nil for null.
	Headers []ingesta.Header
}

// KeyString is the key as text ("" if null).
func (e Emitted) KeyString() string { return string(e.Key) }

// ValueString is the value as text ("" if null).
func (e Emitted) ValueString() string { return string(e.Value) }

// DecodeValue unmarshals the value as JSON into v.
func (e Emitted) DecodeValue(v any) error {
	if e.Value == nil {
		return fmt.Errorf("value of the record for %s is null", e.Topic)
	}
	return json.Unmarshal(e.Value, v)
}

// Run runs one call of handler h (a consumer.Handler) on b, as the runner
// would: on success it returns every record the call published, in order;
// on failure the call's error (as an [*ingesta.Error]), and nothing is
// published.
func Run(h consumer.Handler, b *Batch) ([]Emitted, error) {
	return capture(func() error { return call.Batch(h, &b.raw) })
}

// RunRequest runs one request through producer p, as the runner would: on
// success the response and every record the call published (none for a
// status of 400 or more, not even records flushed early); on failure the
// call's error. A status outside 200-599 is the permanent error the runner
// reports for it ("the module answered with status S, which is not a final
// HTTP status (200-599); nothing was published"), returned with the
// response and no records.
func RunRequest(p producer.Producer, r *ingesta.Request) (ingesta.Response, []Emitted, error) {
	var resp ingesta.Response
	out, err := capture(func() error {
		var err error
		resp, err = call.Request(p, r)
		return err
	})
	switch {
	case err != nil:
		return resp, out, err
	case resp.Status < 200 || resp.Status > 599:
		return resp, nil, ingesta.Permanentf("the module answered with status %d, which is not "+
			"a final HTTP status (200-599); nothing was published", resp.Status)
	case resp.Status >= 400:
		// The runner publishes nothing of a refusal, early flushes included.
		return resp, nil, nil
	}
	return resp, out, nil
}

// RunTick runs one tick through producer p, as the runner would: on
// success every record the call published; on failure the call's error.
func RunTick(p producer.Producer, t ingesta.Tick) ([]Emitted, error) {
	return capture(func() error { return call.Tick(p, t) })
}

func capture(run func() error) ([]Emitted, error) {
	// Emits made outside a call are dropped first.
	outbox.Current.Discard()
	host.TakeEmitted()
	err := run()
	var out []Emitted
	for _, o := range host.TakeEmitted() {
		out = append(out, decode(&o)...)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetConfig replaces the deployment configuration the config package sees.
func SetConfig(entries map[string]string) {
	var list [][2]string
	for _, k := range slices.Sorted(maps.Keys(entries)) {
		list = append(list, [2]string{k, entries[k]})
	}
	host.SetConfig(list)
}

// DenyTopic makes the stand-in host refuse output naming topic, as the real
// one does for a topic the deployment is not granted; "" lifts it.
func DenyTopic(topic string) { host.DenyTopic(topic) }

// LogLine is one line a handler logged.
type LogLine struct {
	Level   ingesta.Level
	Message string
}

// TakeLogs returns and forgets the lines logged so far.
func TakeLogs() []LogLine {
	var out []LogLine
	for _, l := range host.TakeLogs() {
		out = append(out, LogLine{Level: ingesta.Level(l.Level), Message: l.Message})
	}
	return out
}

// Reset empties the configuration, the captured logs and output, lifts a
// denied topic and restores the log level: a clean host for the next test.
func Reset() {
	host.SetConfig(nil)
	host.TakeLogs()
	host.TakeEmitted()
	host.DenyTopic("")
	outbox.Current.Discard()
	ingesta.SetMaxLevel(ingesta.LevelTrace)
}

// decode reads an outbox back into records, checking every span on the
// way; it panics on a malformed outbox.
func decode(o *abi.Outbox) []Emitted {
	if len(o.Records)%abi.OutgoingEntrySize != 0 {
		panic("outbox records are not whole entries")
	}
	get := func(s abi.Span) []byte {
		b, ok := s.Get(o.Data)
		if !ok {
			panic("span points outside the outbox")
		}
		return slices.Clone(b)
	}
	var out []Emitted
	for i := range len(o.Records) / abi.OutgoingEntrySize {
		e, _ := abi.ReadOutgoingEntry(o.Records, i)
		em := Emitted{Topic: o.Topics[e.Topic]}
		if e.HasKey {
			em.Key = get(e.Key)
		}
		if e.HasValue {
			em.Value = get(e.Value)
		}
		for h := e.HeaderStart; h < e.HeaderStart+e.HeaderCount; h++ {
			he, ok := abi.ReadHeaderEntry(o.Headers, int(h))
			if !ok {
				panic("header index points outside the outbox")
			}
			name := get(he.Name)
			if !utf8.Valid(name) {
				panic("header name is not UTF-8")
			}
			var value []byte
			if he.HasValue {
				value = get(he.Value)
			}
			em.Headers = append(em.Headers, ingesta.Header{Name: string(name), Value: value})
		}
		out = append(out, em)
	}
	return out
}
