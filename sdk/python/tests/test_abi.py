"""The codec against the byte-exact vectors of sdk/abi/src/lib.rs."""

import struct
import unittest

from ingesta._abi import (
    HAS_VALUE,
    HEADER_ENTRY_SIZE,
    OUTGOING_ENTRY_SIZE,
    HeaderEntry,
    OutgoingEntry,
    RecordEntry,
    Span,
    TimestampKind,
)


class AbiVectors(unittest.TestCase):
    def test_record_entry_vector(self) -> None:
        e = RecordEntry(
            offset=0x0102_0304_0506_0708,
            timestamp_kind=TimestampKind.LOG_APPEND_TIME,
            timestamp=1_732_460_000_000,
            key=Span(1, 2),
            value=None,
            header_start=3,
            header_count=4,
        )
        out = bytearray()
        e.encode(out)
        expected = bytes([8, 7, 6, 5, 4, 3, 2, 1])
        expected += struct.pack("<q", 1_732_460_000_000)
        expected += bytes([1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        expected += bytes([3, 0, 0, 0, 4, 0, 0, 0])
        expected += bytes([0b1101, 0, 0, 0, 0, 0, 0, 0])
        self.assertEqual(bytes(out), expected)
        self.assertEqual(RecordEntry.read(out, 0), e)
        self.assertIsNone(RecordEntry.read(out, 1))

    def test_outgoing_and_header_round_trip(self) -> None:
        o = OutgoingEntry(topic=2, key=None, value=Span(0, 0), header_start=1, header_count=1)
        h = HeaderEntry(name=Span(5, 3), value=None)
        a, b = bytearray(), bytearray()
        o.encode(a)
        h.encode(b)
        self.assertEqual(len(a), OUTGOING_ENTRY_SIZE)
        self.assertEqual(a[28], HAS_VALUE, "an empty value is not null")
        self.assertEqual(len(b), HEADER_ENTRY_SIZE)
        self.assertEqual(OutgoingEntry.read(a, 0), o)
        self.assertEqual(HeaderEntry.read(b, 0), h)

    def test_spans_outside_the_buffer_are_refused(self) -> None:
        data = b"abc"
        self.assertEqual(Span(1, 2).get(data), b"bc")
        self.assertIsNone(Span(2, 2).get(data))
        self.assertIsNone(Span(0xFFFF_FFFF, 0xFFFF_FFFF).get(data))

    def test_timestamps_and_flags_decode(self) -> None:
        out = bytearray()
        RecordEntry(5, TimestampKind.NOT_AVAILABLE, 99, None, None, 0, 0).encode(out)
        RecordEntry(6, TimestampKind.CREATE_TIME, -1, Span(0, 0), Span(0, 0), 0, 0).encode(out)
        self.assertEqual(out[8:16], bytes(8), "an absent timestamp is written as 0")
        self.assertEqual(out[40], 0)
        self.assertEqual(RecordEntry.count(out), 2)
        second = RecordEntry.read(out, 1)
        assert second is not None
        self.assertEqual(second.timestamp_kind, TimestampKind.CREATE_TIME)
        self.assertEqual(second.timestamp, -1)
        self.assertEqual((second.key, second.value), (Span(0, 0), Span(0, 0)))


if __name__ == "__main__":
    unittest.main()
