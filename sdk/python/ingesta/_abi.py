"""The byte layout of the entry lists in ``wit/types.wit``.

This module owns the codec of the three fixed-size, little-endian entries
that point into a batch's or an outbox's ``data`` buffer. It mirrors the
reference codec in ``sdk/abi/src/lib.rs`` and is checked against its test
vectors (``tests/test_abi.py``).

====================  ====  ==================================================
entry                 size  fields (byte offset: type)
====================  ====  ==================================================
record                48    0: offset i64, 8: timestamp i64, 16: key start
                            u32, 20: key len u32, 24: value start u32, 28:
                            value len u32, 32: first header u32, 36: header
                            count u32, 40: attributes u8, 41..48: zero
outgoing              32    0: topic index u32, 4: key start u32, 8: key len
                            u32, 12: value start u32, 16: value len u32, 20:
                            first header u32, 24: header count u32, 28:
                            attributes u8, 29..32: zero
header                20    0: name start u32, 4: name len u32, 8: value
                            start u32, 12: value len u32, 16: attributes u8,
                            17..20: zero
====================  ====  ==================================================
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum

RECORD_ENTRY_SIZE = 48
"""Bytes per record entry."""
OUTGOING_ENTRY_SIZE = 32
"""Bytes per outgoing entry."""
HEADER_ENTRY_SIZE = 20
"""Bytes per header entry."""

HAS_KEY = 1 << 0
"""Attribute bit: the key is present (otherwise null)."""
HAS_VALUE = 1 << 1
"""Attribute bit: the value is present (otherwise a tombstone / null header value)."""
HAS_TIMESTAMP = 1 << 2
"""Attribute bit: the timestamp is set (otherwise the broker had none)."""
LOG_APPEND_TIME = 1 << 3
"""Attribute bit: the timestamp is the broker's log-append time."""

RECORD_STRUCT = struct.Struct("<qqIIIIIIB7x")
"""offset, timestamp, key start/len, value start/len, header start/count, attributes."""
OUTGOING_STRUCT = struct.Struct("<IIIIIIIB3x")
"""topic, key start/len, value start/len, header start/count, attributes."""
HEADER_STRUCT = struct.Struct("<IIIIB3x")
"""name start/len, value start/len, attributes."""

assert RECORD_STRUCT.size == RECORD_ENTRY_SIZE
assert OUTGOING_STRUCT.size == OUTGOING_ENTRY_SIZE
assert HEADER_STRUCT.size == HEADER_ENTRY_SIZE


@dataclass(frozen=True)
class Span:
    """A byte range inside the enclosing ``data`` buffer."""

    start: int
    len: int

    def get(self, data: bytes | bytearray | memoryview) -> bytes | None:
        """The bytes this span covers, or ``None`` if it points outside ``data``."""
        end = self.start + self.len
        if end > len(data):
            return None
        return bytes(data[self.start : end])

    @staticmethod
    def append(data: bytearray, payload: bytes | bytearray | memoryview) -> Span:
        """Appends ``payload`` to ``data`` and returns its span."""
        start = len(data)
        if start + len(payload) > 0xFFFF_FFFF:
            raise OverflowError("buffer exceeds the 4 GiB the WIT layout can address")
        data += payload
        return Span(start, len(payload))


class TimestampKind(Enum):
    """How a record entry's timestamp was set (the codec's view)."""

    NOT_AVAILABLE = 0
    CREATE_TIME = 1
    LOG_APPEND_TIME = 2


@dataclass(frozen=True)
class RecordEntry:
    """One consumed record."""

    offset: int
    timestamp_kind: TimestampKind
    timestamp: int
    key: Span | None
    value: Span | None
    header_start: int
    header_count: int

    def encode(self, out: bytearray) -> None:
        """Appends this entry's 48 bytes to ``out``."""
        if self.timestamp_kind is TimestampKind.NOT_AVAILABLE:
            ts, attributes = 0, 0
        elif self.timestamp_kind is TimestampKind.CREATE_TIME:
            ts, attributes = self.timestamp, HAS_TIMESTAMP
        else:
            ts, attributes = self.timestamp, HAS_TIMESTAMP | LOG_APPEND_TIME
        key = self.key or _NO_SPAN
        value = self.value or _NO_SPAN
        if self.key is not None:
            attributes |= HAS_KEY
        if self.value is not None:
            attributes |= HAS_VALUE
        out += RECORD_STRUCT.pack(
            self.offset,
            ts,
            key.start,
            key.len,
            value.start,
            value.len,
            self.header_start,
            self.header_count,
            attributes,
        )

    @staticmethod
    def read(entries: bytes | bytearray | memoryview, index: int) -> RecordEntry | None:
        """Decodes entry ``index`` of ``entries``, if there is one."""
        at = index * RECORD_ENTRY_SIZE
        if index < 0 or at + RECORD_ENTRY_SIZE > len(entries):
            return None
        offset, ts, ks, kl, vs, vl, hs, hc, a = RECORD_STRUCT.unpack_from(entries, at)
        if not a & HAS_TIMESTAMP:
            kind, ts = TimestampKind.NOT_AVAILABLE, 0
        elif a & LOG_APPEND_TIME:
            kind = TimestampKind.LOG_APPEND_TIME
        else:
            kind = TimestampKind.CREATE_TIME
        return RecordEntry(
            offset=offset,
            timestamp_kind=kind,
            timestamp=ts,
            key=Span(ks, kl) if a & HAS_KEY else None,
            value=Span(vs, vl) if a & HAS_VALUE else None,
            header_start=hs,
            header_count=hc,
        )

    @staticmethod
    def count(entries: bytes | bytearray | memoryview) -> int:
        """Number of whole entries in ``entries``."""
        return len(entries) // RECORD_ENTRY_SIZE


@dataclass(frozen=True)
class OutgoingEntry:
    """One record to publish."""

    topic: int
    key: Span | None
    value: Span | None
    header_start: int
    header_count: int

    def encode(self, out: bytearray) -> None:
        """Appends this entry's 32 bytes to ``out``."""
        key = self.key or _NO_SPAN
        value = self.value or _NO_SPAN
        attributes = (HAS_KEY if self.key is not None else 0) | (
            HAS_VALUE if self.value is not None else 0
        )
        out += OUTGOING_STRUCT.pack(
            self.topic,
            key.start,
            key.len,
            value.start,
            value.len,
            self.header_start,
            self.header_count,
            attributes,
        )

    @staticmethod
    def read(entries: bytes | bytearray | memoryview, index: int) -> OutgoingEntry | None:
        """Decodes entry ``index`` of ``entries``, if there is one."""
        at = index * OUTGOING_ENTRY_SIZE
        if index < 0 or at + OUTGOING_ENTRY_SIZE > len(entries):
            return None
        topic, ks, kl, vs, vl, hs, hc, a = OUTGOING_STRUCT.unpack_from(entries, at)
        return OutgoingEntry(
            topic=topic,
            key=Span(ks, kl) if a & HAS_KEY else None,
            value=Span(vs, vl) if a & HAS_VALUE else None,
            header_start=hs,
            header_count=hc,
        )

    @staticmethod
    def count(entries: bytes | bytearray | memoryview) -> int:
        """Number of whole entries in ``entries``."""
        return len(entries) // OUTGOING_ENTRY_SIZE


@dataclass(frozen=True)
class HeaderEntry:
    """One header."""

    name: Span
    value: Span | None

    def encode(self, out: bytearray) -> None:
        """Appends this entry's 20 bytes to ``out``."""
        value = self.value or _NO_SPAN
        out += HEADER_STRUCT.pack(
            self.name.start,
            self.name.len,
            value.start,
            value.len,
            HAS_VALUE if self.value is not None else 0,
        )

    @staticmethod
    def read(entries: bytes | bytearray | memoryview, index: int) -> HeaderEntry | None:
        """Decodes entry ``index`` of ``entries``, if there is one."""
        at = index * HEADER_ENTRY_SIZE
        if index < 0 or at + HEADER_ENTRY_SIZE > len(entries):
            return None
        ns, nl, vs, vl, a = HEADER_STRUCT.unpack_from(entries, at)
        return HeaderEntry(Span(ns, nl), Span(vs, vl) if a & HAS_VALUE else None)

    @staticmethod
    def count(entries: bytes | bytearray | memoryview) -> int:
        """Number of whole entries in ``entries``."""
        return len(entries) // HEADER_ENTRY_SIZE


_NO_SPAN = Span(0, 0)
