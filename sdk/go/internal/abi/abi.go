// Package abi owns the byte layout of the entry lists in wit/types.wit and
// plain Go mirrors of the WIT records that cross the host boundary.
//
// It is the Go twin of the Rust crate sdk/abi (the reference codec) and is
// checked against that crate's test vectors. A batch's record entries, an
// outbox's outgoing entries and both their header entries are fixed-size
// little-endian entries pointing into one data buffer:
//
//	entry     size  fields (byte offset: type)
//	record    48    0: offset i64, 8: timestamp i64, 16: key start u32, 20: key len u32,
//	                24: value start u32, 28: value len u32, 32: first header u32,
//	                36: header count u32, 40: attributes u8, 41..48: zero
//	outgoing  32    0: topic index u32, 4: key start u32, 8: key len u32, 12: value start u32,
//	                16: value len u32, 20: first header u32, 24: header count u32,
//	                28: attributes u8, 29..32: zero
//	header    20    0: name start u32, 4: name len u32, 8: value start u32,
//	                12: value len u32, 16: attributes u8, 17..20: zero
package abi

import "encoding/binary"

// Entry sizes in bytes.
const (
	RecordEntrySize   = 48
	OutgoingEntrySize = 32
	HeaderEntrySize   = 20
)

// Bits of an entry's attributes byte (WIT record-flags).
const (
	HasKey        uint8 = 1 << 0
	HasValue      uint8 = 1 << 1
	HasTimestamp  uint8 = 1 << 2
	LogAppendTime uint8 = 1 << 3
)

var le = binary.LittleEndian

// Span is a byte range inside the enclosing data buffer.
type Span struct {
	Start, Len uint32
}

// Get returns the bytes span covers, or ok=false if it points outside data.
// A present empty span yields a non-nil empty slice.
func (s Span) Get(data []byte) (b []byte, ok bool) {
	start, end := uint64(s.Start), uint64(s.Start)+uint64(s.Len)
	if end > uint64(len(data)) {
		return nil, false
	}
	if s.Len == 0 {
		return []byte{}, true
	}
	return data[start:end:end], true
}

// Append appends b to *data and returns its span.
func Append(data *[]byte, b []byte) Span {
	start := len(*data)
	*data = append(*data, b...)
	return Span{Start: uint32(start), Len: uint32(len(b))}
}

// TimestampKind says how a record's timestamp was set.
type TimestampKind uint8

// Timestamp kinds.
const (
	NoTimestamp TimestampKind = iota
	CreateTime
	LogAppend
)

// RecordEntry is one consumed record.
type RecordEntry struct {
	Offset        int64
	TimestampKind TimestampKind
	Timestamp     int64
	Key, Value    Span
	HasKey        bool
	HasValue      bool
	HeaderStart   uint32
	HeaderCount   uint32
}

// AppendRecordEntry appends e's 48 bytes to out.
func AppendRecordEntry(out []byte, e RecordEntry) []byte {
	var attr uint8
	ts := int64(0)
	switch e.TimestampKind {
	case CreateTime:
		attr, ts = HasTimestamp, e.Timestamp
	case LogAppend:
		attr, ts = HasTimestamp|LogAppendTime, e.Timestamp
	}
	out = le.AppendUint64(out, uint64(e.Offset))
	out = le.AppendUint64(out, uint64(ts))
	out = appendSpan(out, e.Key, e.HasKey)
	out = appendSpan(out, e.Value, e.HasValue)
	out = le.AppendUint32(out, e.HeaderStart)
	out = le.AppendUint32(out, e.HeaderCount)
	attr |= flag(e.HasKey, HasKey) | flag(e.HasValue, HasValue)
	return append(out, attr, 0, 0, 0, 0, 0, 0, 0)
}

// ReadRecordEntry decodes entry i of entries, if there is one.
func ReadRecordEntry(entries []byte, i int) (RecordEntry, bool) {
	b, ok := entry(entries, i, RecordEntrySize)
	if !ok {
		return RecordEntry{}, false
	}
	a := b[40]
	e := RecordEntry{
		Offset:      int64(le.Uint64(b[0:])),
		HasKey:      a&HasKey != 0,
		HasValue:    a&HasValue != 0,
		HeaderStart: le.Uint32(b[32:]),
		HeaderCount: le.Uint32(b[36:]),
	}
	if e.HasKey {
		e.Key = readSpan(b[16:])
	}
	if e.HasValue {
		e.Value = readSpan(b[24:])
	}
	if a&HasTimestamp != 0 {
		e.Timestamp = int64(le.Uint64(b[8:]))
		e.TimestampKind = CreateTime
		if a&LogAppendTime != 0 {
			e.TimestampKind = LogAppend
		}
	}
	return e, true
}

// OutgoingEntry is one record to publish.
type OutgoingEntry struct {
	Topic       uint32
	Key, Value  Span
	HasKey      bool
	HasValue    bool
	HeaderStart uint32
	HeaderCount uint32
}

// AppendOutgoingEntry appends e's 32 bytes to out.
func AppendOutgoingEntry(out []byte, e OutgoingEntry) []byte {
	out = le.AppendUint32(out, e.Topic)
	out = appendSpan(out, e.Key, e.HasKey)
	out = appendSpan(out, e.Value, e.HasValue)
	out = le.AppendUint32(out, e.HeaderStart)
	out = le.AppendUint32(out, e.HeaderCount)
	return append(out, flag(e.HasKey, HasKey)|flag(e.HasValue, HasValue), 0, 0, 0)
}

// ReadOutgoingEntry decodes entry i of entries, if there is one.
func ReadOutgoingEntry(entries []byte, i int) (OutgoingEntry, bool) {
	b, ok := entry(entries, i, OutgoingEntrySize)
	if !ok {
		return OutgoingEntry{}, false
	}
	a := b[28]
	e := OutgoingEntry{
		Topic:       le.Uint32(b[0:]),
		HasKey:      a&HasKey != 0,
		HasValue:    a&HasValue != 0,
		HeaderStart: le.Uint32(b[20:]),
		HeaderCount: le.Uint32(b[24:]),
	}
	if e.HasKey {
		e.Key = readSpan(b[4:])
	}
	if e.HasValue {
		e.Value = readSpan(b[12:])
	}
	return e, true
}

// HeaderEntry is one header.
type HeaderEntry struct {
	Name     Span
	Value    Span
	HasValue bool
}

// AppendHeaderEntry appends e's 20 bytes to out.
func AppendHeaderEntry(out []byte, e HeaderEntry) []byte {
	out = appendSpan(out, e.Name, true)
	out = appendSpan(out, e.Value, e.HasValue)
	return append(out, flag(e.HasValue, HasValue), 0, 0, 0)
}

// ReadHeaderEntry decodes entry i of entries, if there is one.
func ReadHeaderEntry(entries []byte, i int) (HeaderEntry, bool) {
	b, ok := entry(entries, i, HeaderEntrySize)
	if !ok {
		return HeaderEntry{}, false
	}
	e := HeaderEntry{Name: readSpan(b[0:]), HasValue: b[16]&HasValue != 0}
	if e.HasValue {
		e.Value = readSpan(b[8:])
	}
	return e, true
}

func entry(entries []byte, i, size int) ([]byte, bool) {
	if i < 0 || i >= len(entries)/size {
		return nil, false
	}
	return entries[i*size : (i+1)*size], true
}

func appendSpan(out []byte, s Span, present bool) []byte {
	if !present {
		s = Span{}
	}
	out = le.AppendUint32(out, s.Start)
	return le.AppendUint32(out, s.Len)
}

func readSpan(b []byte) Span {
	return Span{Start: le.Uint32(b[0:]), Len: le.Uint32(b[4:])}
}

func flag(on bool, bit uint8) uint8 {
	if on {
		return bit
	}
	return 0
}
