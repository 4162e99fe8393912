// Package outbox owns the buffered output of the current call.
//
// Every emitted record is appended to one outbox laid out like the WIT
// outbox (one data buffer plus fixed-size entries pointing into it), so a
// call's whole output crosses to the host in a single emit call when the
// call succeeds (Finish), and is dropped when it fails (Discard). Buffers
// are truncated, not freed, after each flush: once warm, emitting does not
// allocate. Output above FlushThreshold is handed to the host early to
// bound guest memory.
package outbox

import (
	"example.invalid/ingesta/sdk/go/internal/abi"
	"example.invalid/ingesta/sdk/go/internal/host"
)

// FlushThreshold is the buffered output above which the outbox is handed
// to the host before the call ends.
const FlushThreshold = 4 << 20

// Outbox is a call's buffered output in WIT layout.
type Outbox struct {
	wire abi.Outbox
	// refused is set when an early flush was refused: the host fails the
	// call anyway, so later records are dropped and the call reports it.
	refused    string
	hasRefusal bool
	headers    uint32
	// sink receives flushed outboxes (the host's emit, or a stand-in).
	sink func(*abi.Outbox) *abi.EmitError
}

// Current is this instance's outbox. Guests are single-threaded, and each
// instance handles one call at a time.
var Current = &Outbox{sink: host.Emit}

// Mark is a position to roll back to.
type Mark struct {
	data    int
	headers int
	count   uint32
}

// Dropping reports whether records are being dropped because an early
// flush was refused.
func (o *Outbox) Dropping() bool { return o.hasRefusal }

// Mark returns the current position, to Rollback to if a record cannot be
// completed.
func (o *Outbox) Mark() Mark {
	return Mark{data: len(o.wire.Data), headers: len(o.wire.Headers), count: o.headers}
}

// Rollback drops everything appended since m.
func (o *Outbox) Rollback(m Mark) {
	o.wire.Data = o.wire.Data[:m.data]
	o.wire.Headers = o.wire.Headers[:m.headers]
	o.headers = m.count
}

// AppendBytes appends b to the data buffer and returns its span.
func (o *Outbox) AppendBytes(b []byte) abi.Span {
	return abi.Append(&o.wire.Data, b)
}

// AppendString appends s to the data buffer and returns its span.
func (o *Outbox) AppendString(s string) abi.Span {
	start := len(o.wire.Data)
	o.wire.Data = append(o.wire.Data, s...)
	return abi.Span{Start: uint32(start), Len: uint32(len(s))}
}

// Data exposes the data buffer for writers that append in place; set it
// back with SetData.
func (o *Outbox) Data() []byte { return o.wire.Data }

// SetData replaces the data buffer after an in-place append.
func (o *Outbox) SetData(d []byte) { o.wire.Data = d }

// HeaderCount is the number of header entries so far; a record's first
// header index.
func (o *Outbox) HeaderCount() uint32 { return o.headers }

// AddHeader appends a header whose name and value are appended to data;
// a nil value is null.
func (o *Outbox) AddHeader(name string, value []byte) {
	n := o.AppendString(name)
	e := abi.HeaderEntry{Name: n, HasValue: value != nil}
	if value != nil {
		e.Value = o.AppendBytes(value)
	}
	o.wire.Headers = abi.AppendHeaderEntry(o.wire.Headers, e)
	o.headers++
}

// FinishRecord appends the outgoing entry of a record whose key, value and
// headers (from headerStart on) are already in the buffers.
func (o *Outbox) FinishRecord(topic string, key abi.Span, hasKey bool, value abi.Span, hasValue bool, headerStart uint32) {
	o.wire.Records = abi.AppendOutgoingEntry(o.wire.Records, abi.OutgoingEntry{
		Topic:       o.topicIndex(topic),
		Key:         key,
		HasKey:      hasKey,
		Value:       value,
		HasValue:    hasValue,
		HeaderStart: headerStart,
		HeaderCount: o.headers - headerStart,
	})
}

// MaybeFlush hands the output to the host early if it grew past
// FlushThreshold.
func (o *Outbox) MaybeFlush() {
	if len(o.wire.Data) >= FlushThreshold {
		o.flush()
	}
}

func (o *Outbox) topicIndex(topic string) uint32 {
	// Outboxes name a handful of topics; a scan beats hashing here.
	for i, t := range o.wire.Topics {
		if t == topic {
			return uint32(i)
		}
	}
	o.wire.Topics = append(o.wire.Topics, topic)
	return uint32(len(o.wire.Topics) - 1)
}

// BufferedBytes is the size of the data buffer.
func (o *Outbox) BufferedBytes() int { return len(o.wire.Data) }

// Wire is the outbox as it would be handed to the host (for tests).
func (o *Outbox) Wire() *abi.Outbox { return &o.wire }

func (o *Outbox) flush() {
	if !o.hasRefusal && len(o.wire.Records) > 0 {
		if err := o.sink(&o.wire); err != nil {
			o.refused, o.hasRefusal = host.Refused(*err), true
		}
	}
	o.clear()
}

// Finish flushes what is left and reports whether the host accepted all of
// this call's output: "" if it did, else the refusal. The outbox is left
// empty for the next call.
func (o *Outbox) Finish() (refusal string, refused bool) {
	o.flush()
	refusal, refused = o.refused, o.hasRefusal
	o.refused, o.hasRefusal = "", false
	return refusal, refused
}

// Discard drops buffered output and any refusal: the call failed, so the
// host publishes nothing of it regardless.
func (o *Outbox) Discard() {
	o.clear()
	o.refused, o.hasRefusal = "", false
}

func (o *Outbox) clear() {
	o.wire.Topics = o.wire.Topics[:0]
	o.wire.Data = o.wire.Data[:0]
	o.wire.Records = o.wire.Records[:0]
	o.wire.Headers = o.wire.Headers[:0]
	o.headers = 0
}

// SetSink replaces where flushed outboxes go and returns the previous sink
// (for tests).
func (o *Outbox) SetSink(sink func(*abi.Outbox) *abi.EmitError) func(*abi.Outbox) *abi.EmitError {
	prev := o.sink
	o.sink = sink
	return prev
}
