package abi

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// The vectors of sdk/abi's tests: the Go SDK must produce and accept
// exactly these bytes.
func TestRecordEntryVector(t *testing.T) {
	e := RecordEntry{
		Offset:        0x0102030405060708,
		TimestampKind: LogAppend,
		Timestamp:     1_732_460_000_000,
		Key:           Span{Start: 1, Len: 2},
		HasKey:        true,
		HeaderStart:   3,
		HeaderCount:   4,
	}
	out := AppendRecordEntry(nil, e)
	want := []byte{8, 7, 6, 5, 4, 3, 2, 1}
	want = binary.LittleEndian.AppendUint64(want, 1_732_460_000_000)
	want = append(want, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	want = append(want, 3, 0, 0, 0, 4, 0, 0, 0)
	want = append(want, 0b1101, 0, 0, 0, 0, 0, 0, 0)
	if !bytes.Equal(out, want) {
		t.Fatalf("encoded\n%v\nwant\n%v", out, want)
	}
	got, ok := ReadRecordEntry(out, 0)
	if !ok || got != e {
		t.Fatalf("read back %+v, %v; want %+v", got, ok, e)
	}
	if _, ok := ReadRecordEntry(out, 1); ok {
		t.Fatal("entry 1 of a one-entry list")
	}
}

func TestTimestampKinds(t *testing.T) {
	for _, e := range []RecordEntry{
		{Offset: 1},
		{Offset: 2, TimestampKind: CreateTime, Timestamp: -5},
		{Offset: 3, TimestampKind: LogAppend, Timestamp: 42, Value: Span{Start: 9, Len: 0}, HasValue: true},
	} {
		out := AppendRecordEntry(nil, e)
		if len(out) != RecordEntrySize {
			t.Fatalf("size %d", len(out))
		}
		if got, _ := ReadRecordEntry(out, 0); got != e {
			t.Errorf("round trip %+v -> %+v", e, got)
		}
	}
	// Without has-timestamp, the timestamp bytes are zero.
	out := AppendRecordEntry(nil, RecordEntry{Timestamp: 77})
	if !bytes.Equal(out[8:16], make([]byte, 8)) || out[40] != 0 {
		t.Errorf("absent timestamp written: %v", out)
	}
}

func TestOutgoingAndHeaderRoundTrip(t *testing.T) {
	o := OutgoingEntry{Topic: 2, Value: Span{}, HasValue: true, HeaderStart: 1, HeaderCount: 1}
	h := HeaderEntry{Name: Span{Start: 5, Len: 3}}
	a := AppendOutgoingEntry(nil, o)
	b := AppendHeaderEntry(nil, h)
	if len(a) != OutgoingEntrySize || len(b) != HeaderEntrySize {
		t.Fatalf("sizes %d, %d", len(a), len(b))
	}
	if a[28] != HasValue {
		t.Errorf("an empty value is not null: attributes %b", a[28])
	}
	if got, ok := ReadOutgoingEntry(a, 0); !ok || got != o {
		t.Errorf("outgoing %+v", got)
	}
	if got, ok := ReadHeaderEntry(b, 0); !ok || got != h {
		t.Errorf("header %+v", got)
	}
	// Byte-exact layout of a full outgoing and header entry.
	full := AppendOutgoingEntry(nil, OutgoingEntry{
		Topic: 7, Key: Span{1, 2}, HasKey: true, Value: Span{3, 4}, HasValue: true,
		HeaderStart: 5, HeaderCount: 6,
	})
	want := []byte{7, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0, 3, 0, 0, 0}
	if !bytes.Equal(full, want) {
		t.Errorf("outgoing bytes %v", full)
	}
	hdr := AppendHeaderEntry(nil, HeaderEntry{Name: Span{1, 2}, Value: Span{3, 4}, HasValue: true})
	wantH := []byte{1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0}
	if !bytes.Equal(hdr, wantH) {
		t.Errorf("header bytes %v", hdr)
	}
	// A null header value writes a zero span even if one was set.
	if got := AppendHeaderEntry(nil, HeaderEntry{Name: Span{1, 1}, Value: Span{9, 9}}); !bytes.Equal(got[8:16], make([]byte, 8)) {
		t.Errorf("null value span written: %v", got)
	}
}

func TestSpansOutsideTheBufferAreRefused(t *testing.T) {
	data := []byte("abc")
	if b, ok := (Span{1, 2}).Get(data); !ok || string(b) != "bc" {
		t.Errorf("got %q %v", b, ok)
	}
	if _, ok := (Span{2, 2}).Get(data); ok {
		t.Error("span past the end accepted")
	}
	if _, ok := (Span{^uint32(0), ^uint32(0)}).Get(data); ok {
		t.Error("overflowing span accepted")
	}
	if b, ok := (Span{3, 0}).Get(data); !ok || b == nil || len(b) != 0 {
		t.Errorf("empty span at the end: %v %v", b, ok)
	}
	if b, ok := (Span{0, 0}).Get(nil); !ok || b == nil {
		t.Error("an empty span is empty, not null")
	}
}

func TestTruncatedEntriesAreNotRead(t *testing.T) {
	out := AppendRecordEntry(nil, RecordEntry{})
	if _, ok := ReadRecordEntry(out[:47], 0); ok {
		t.Error("partial record entry read")
	}
	if _, ok := ReadOutgoingEntry(make([]byte, 31), 0); ok {
		t.Error("partial outgoing entry read")
	}
	if _, ok := ReadHeaderEntry(make([]byte, 20), -1); ok {
		t.Error("negative index read")
	}
}
