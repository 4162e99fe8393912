package ingesta

import (
	"encoding/json"
	"fmt"
	"iter"
	"unicode/utf8"

	"example.invalid/ingesta/sdk/go/internal/abi"
	"example.invalid/ingesta/sdk/go/internal/bridge"
)

func init() {
	bridge.NewBatch = func(raw *abi.Batch) any { return Batch{raw: raw} }
}

// Batch is consecutive records from one partition of one topic, in offset
// order: a view over the bytes the host sent. Records are decoded when
// visited and their keys, values and headers resolved on access, so
// iterating a batch does not allocate.
//
// A Batch and its records are valid during the call that received them;
// the bytes they return must not be modified.
type Batch struct {
	raw *abi.Batch
}

// Topic is the topic the records were read from.
func (b Batch) Topic() string {
	if b.raw == nil {
		return ""
	}
	return b.raw.Topic
}

// Partition is the partition the records were read from.
func (b Batch) Partition() int32 {
	if b.raw == nil {
		return 0
	}
	return b.raw.Partition
}

// Len is the number of records.
func (b Batch) Len() int {
	if b.raw == nil {
		return 0
	}
	return len(b.raw.Records) / abi.RecordEntrySize
}

// Get returns the record at index i, if there is one.
func (b Batch) Get(i int) (Record, bool) {
	if b.raw == nil {
		return Record{}, false
	}
	e, ok := abi.ReadRecordEntry(b.raw.Records, i)
	if !ok {
		return Record{}, false
	}
	return Record{batch: b.raw, entry: e, index: i}, true
}

// Records iterates over the records in offset order.
func (b Batch) Records() iter.Seq[Record] {
	return func(yield func(Record) bool) {
		for i := range b.Len() {
			r, _ := b.Get(i)
			if !yield(r) {
				return
			}
		}
	}
}

// FirstOffset is the offset of the first record (false if the batch is
// empty, which the runner never sends).
func (b Batch) FirstOffset() (int64, bool) {
	r, ok := b.Get(0)
	return r.Offset(), ok
}

// LastOffset is the offset of the last record.
func (b Batch) LastOffset() (int64, bool) {
	r, ok := b.Get(b.Len() - 1)
	return r.Offset(), ok
}

// ForEach calls fn for each record in order and stops at the first error,
// which it returns marked with the failing record's index (see
// [Error.AtRecord]); an error that is not an [*Error] becomes a permanent
// one. It is what a consumer does for a handler that only has OnRecord.
func (b Batch) ForEach(fn func(Record) error) error {
	for r := range b.Records() {
		if err := fn(r); err != nil {
			return AsError(err).AtRecord(r.Index())
		}
	}
	return nil
}

// String describes the batch (not its contents), for logs and test output.
func (b Batch) String() string {
	first, _ := b.FirstOffset()
	last, _ := b.LastOffset()
	return fmt.Sprintf("Batch{topic %s, partition %d, %d records, offsets %d..%d}",
		b.Topic(), b.Partition(), b.Len(), first, last)
}

// TimestampType says what a record's timestamp means (Kafka's
// timestampType).
type TimestampType uint8

// Timestamp types.
const (
	// NotAvailable: the broker had no timestamp for the record.
	NotAvailable TimestampType = iota
	// CreateTime: set by the producer when the record was created.
	CreateTime
	// LogAppendTime: set by the broker when the record was appended to the log.
	LogAppendTime
)

// String returns "not_available", "create_time" or "log_append_time".
func (t TimestampType) String() string {
	switch t {
	case CreateTime:
		return "create_time"
	case LogAppendTime:
		return "log_append_time"
	default:
		return "not_available"
	}
}

// Record is one consumed Kafka record: a view into its batch.
type Record struct {
	batch *abi.Batch
	entry abi.RecordEntry
	index int
}

// Topic is the topic the record was read from.
func (r Record) Topic() string {
	if r.batch == nil {
		return ""
	}
	return r.batch.Topic
}

// Partition is the partition the record was read from.
func (r Record) Partition() int32 {
	if r.batch == nil {
		return 0
	}
	return r.batch.Partition
}

// Offset is the record's offset in its partition.
func (r Record) Offset() int64 { return r.entry.Offset }

// Index is the record's position in its batch; errors carry it (see
// [Error.AtRecord]).
func (r Record) Index() int { return r.index }

// Timestamp is the record's time in milliseconds since the Unix epoch, and
// false when the broker had none. See [Record.TimestampType] for its meaning.
func (r Record) Timestamp() (int64, bool) {
	return r.entry.Timestamp, r.entry.TimestampKind != abi.NoTimestamp
}

// TimestampType says whether the timestamp was set by the producer or the
// broker.
func (r Record) TimestampType() TimestampType {
	switch r.entry.TimestampKind {
	case abi.CreateTime:
		return CreateTime
	case abi.LogAppend:
		return LogAppendTime
	default:
		return NotAvailable
	}
}

// Key is the key bytes, nil for a null key (an empty key is non-nil).
func (r Record) Key() []byte {
	if !r.entry.HasKey {
		return nil
	}
	return r.bytes(r.entry.Key)
}

// Value is the value bytes, nil for a tombstone (null value).
func (r Record) Value() []byte {
	if !r.entry.HasValue {
		return nil
	}
	return r.bytes(r.entry.Value)
}

// KeyString is the key as UTF-8 text; a permanent error naming the record
// if it is null or not UTF-8.
func (r Record) KeyString() (string, error) {
	return r.text("key", r.Key())
}

// ValueString is the value as UTF-8 text; a permanent error naming the
// record if it is null or not UTF-8.
func (r Record) ValueString() (string, error) {
	return r.text("value", r.Value())
}

// DecodeJSON unmarshals the value as JSON into v (as [json.Unmarshal]
// does). A null value or invalid JSON is a permanent error that names the
// record and carries its index.
func (r Record) DecodeJSON(v any) error {
	value := r.Value()
	if value == nil {
		return r.Error("value is null")
	}
	if err := json.Unmarshal(value, v); err != nil {
		return r.Errorf("value is not valid JSON: %v", err)
	}
	return nil
}

// Headers iterates over the record's headers in their original order, as
// (name, value) with a nil value for a null header value. Repeated names
// are kept.
func (r Record) Headers() iter.Seq2[string, []byte] {
	return func(yield func(string, []byte) bool) {
		for i := range r.HeaderCount() {
			if name, value, ok := r.headerAt(i); ok && !yield(name, value) {
				return
			}
		}
	}
}

// HeaderCount is the number of headers.
func (r Record) HeaderCount() int { return int(r.entry.HeaderCount) }

// Header is the value of the last header called name (Kafka's
// lastHeader); nil if there is none or its value is null.
func (r Record) Header(name string) []byte {
	for i := r.HeaderCount() - 1; i >= 0; i-- {
		if n, value, ok := r.headerAt(i); ok && n == name {
			return value
		}
	}
	return nil
}

// Error is a permanent error about this record: it names the record's
// topic, partition and offset and carries its index.
func (r Record) Error(reason string) *Error {
	return Permanent(fmt.Sprintf("%s (topic %s, partition %d, offset %d)",
		reason, r.Topic(), r.Partition(), r.Offset())).AtRecord(r.index)
}

// Errorf is [Record.Error] with a formatted reason.
func (r Record) Errorf(format string, args ...any) *Error {
	return r.Error(fmt.Sprintf(format, args...))
}

// String describes the record (not its bytes), for logs and test output.
func (r Record) String() string {
	return fmt.Sprintf("Record{topic %s, partition %d, offset %d, index %d}",
		r.Topic(), r.Partition(), r.Offset(), r.index)
}

func (r Record) headerAt(i int) (string, []byte, bool) {
	e, ok := abi.ReadHeaderEntry(r.batch.Headers, int(r.entry.HeaderStart)+i)
	if !ok {
		return "", nil, false
	}
	// The host guarantees UTF-8 names; should one slip through, a
	// replacement character is kinder than failing on every retry.
	name := "\uFFFD"
	if b, ok := e.Name.Get(r.batch.Data); ok && utf8.Valid(b) {
		name = string(b)
	}
	var value []byte
	if e.HasValue {
		value = r.bytes(e.Value)
	}
	return name, value, true
}

func (r Record) bytes(s abi.Span) []byte {
	// The host builds every span inside data.
	if b, ok := s.Get(r.batch.Data); ok {
		return b
	}
	return []byte{}
}

func (r Record) text(what string, b []byte) (string, error) {
	if b == nil {
		return "", r.Error(what + " is null")
	}
	if !utf8.Valid(b) {
		return "", r.Errorf("%s is not UTF-8: %s", what, utf8Problem(b))
	}
	return string(b), nil
}

// utf8Problem says where b stops being UTF-8, as Rust's Utf8Error does.
func utf8Problem(b []byte) string {
	for i := 0; i < len(b); {
		c, size := utf8.DecodeRune(b[i:])
		if c == utf8.RuneError && size <= 1 {
			return fmt.Sprintf("invalid utf-8 sequence from index %d", i)
		}
		i += size
	}
	return "invalid utf-8"
}
