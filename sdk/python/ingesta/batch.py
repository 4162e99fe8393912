"""Views over the WIT ``batch``: :class:`Batch`, :class:`Record` and :class:`Headers`.

The host sends a batch as one byte buffer plus fixed-size entries that point
into it (layout in :mod:`ingesta._abi`); these views decode an entry when a
record is visited and resolve keys, values and headers only when they are
read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from enum import Enum
from typing import Any, Protocol, overload

from ._abi import (
    HAS_KEY,
    HAS_TIMESTAMP,
    HAS_VALUE,
    HEADER_ENTRY_SIZE,
    HEADER_STRUCT,
    LOG_APPEND_TIME,
    RECORD_ENTRY_SIZE,
    RECORD_STRUCT,
)
from ._json import from_json
from .errors import Permanent, describe_json_error

__all__ = ["Batch", "Record", "Headers", "TimestampType"]


class RawBatch(Protocol):
    """The WIT ``batch`` record, as the host (or :class:`ingesta.testing.TestBatch`) hands it over."""

    topic: str
    partition: int
    data: bytes
    records: bytes
    headers: bytes


class TimestampType(Enum):
    """What a record's timestamp means (Kafka's ``timestampType``)."""

    NOT_AVAILABLE = "not_available"
    """The broker had no timestamp for the record."""
    CREATE_TIME = "create_time"
    """Set by the producer when the record was created."""
    LOG_APPEND_TIME = "log_append_time"
    """Set by the broker when the record was appended to the log."""


class Batch(Sequence["Record"]):
    """Consecutive records from one partition of one topic, in offset order.

    A sequence of :class:`Record`: ``len(batch)``, ``for record in batch``,
    ``batch[i]`` (negative indices count from the end), plus
    :meth:`get` for an optional lookup.
    """

    __slots__ = ("_raw", "_len")

    def __init__(self, raw: RawBatch) -> None:
        self._raw = raw
        self._len = len(raw.records) // RECORD_ENTRY_SIZE

    @property
    def topic(self) -> str:
        """The topic the records were read from."""
        return self._raw.topic

    @property
    def partition(self) -> int:
        """The partition the records were read from."""
        return self._raw.partition

    def __len__(self) -> int:
        """Number of records."""
        return self._len

    @overload
    def __getitem__(self, index: int) -> Record: ...

    @overload
    def __getitem__(self, index: slice) -> list[Record]: ...

    def __getitem__(self, index: int | slice) -> Record | list[Record]:
        """The record at ``index`` (or a list of records for a slice)."""
        if isinstance(index, slice):
            return [Record(self._raw, i) for i in range(*index.indices(self._len))]
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(f"record index {index} out of range for a batch of {self._len}")
        return Record(self._raw, index)

    def __iter__(self) -> Iterator[Record]:
        """The records, in offset order."""
        raw = self._raw
        for i in range(self._len):
            yield Record(raw, i)

    def get(self, index: int) -> Record | None:
        """The record at ``index`` (from 0), or ``None`` if there is none."""
        if 0 <= index < self._len:
            return Record(self._raw, index)
        return None

    def records(self) -> Iterator[Record]:
        """The records, in offset order (same as iterating the batch)."""
        return iter(self)

    def is_empty(self) -> bool:
        """Whether the batch has no records (the runner never sends one)."""
        return self._len == 0

    @property
    def first_offset(self) -> int | None:
        """Offset of the first record (``None`` for an empty batch)."""
        return Record(self._raw, 0).offset if self._len else None

    @property
    def last_offset(self) -> int | None:
        """Offset of the last record (``None`` for an empty batch)."""
        return Record(self._raw, self._len - 1).offset if self._len else None

    def __repr__(self) -> str:
        return (
            f"Batch(topic={self.topic!r}, partition={self.partition}, len={self._len}, "
            f"first_offset={self.first_offset}, last_offset={self.last_offset})"
        )


class Record:
    """One consumed Kafka record: a view into its batch.

    Keys, values and headers are read from the batch's buffer when accessed.
    """

    __slots__ = ("_raw", "_index", "_entry")

    def __init__(self, raw: RawBatch, index: int) -> None:
        self._raw = raw
        self._index = index
        self._entry: tuple[int, ...] = RECORD_STRUCT.unpack_from(
            raw.records, index * RECORD_ENTRY_SIZE
        )

    @property
    def topic(self) -> str:
        """The topic the record was read from."""
        return self._raw.topic

    @property
    def partition(self) -> int:
        """The partition the record was read from."""
        return self._raw.partition

    @property
    def offset(self) -> int:
        """The record's offset in its partition."""
        return self._entry[0]

    @property
    def index(self) -> int:
        """The record's position in its batch; see :meth:`ingesta.Error.at_record`."""
        return self._index

    @property
    def timestamp(self) -> int | None:
        """Milliseconds since the Unix epoch, or ``None`` when the broker had
        no timestamp. See :attr:`timestamp_type` for its meaning."""
        return self._entry[1] if self._entry[8] & HAS_TIMESTAMP else None

    @property
    def timestamp_type(self) -> TimestampType:
        """Whether the timestamp was set by the producer or the broker."""
        a = self._entry[8]
        if not a & HAS_TIMESTAMP:
            return TimestampType.NOT_AVAILABLE
        if a & LOG_APPEND_TIME:
            return TimestampType.LOG_APPEND_TIME
        return TimestampType.CREATE_TIME

    @property
    def key(self) -> bytes | None:
        """The key bytes, or ``None`` for a null key."""
        e = self._entry
        if not e[8] & HAS_KEY:
            return None
        return self._raw.data[e[2] : e[2] + e[3]]

    @property
    def value(self) -> bytes | None:
        """The value bytes, or ``None`` for a tombstone (null value)."""
        e = self._entry
        if not e[8] & HAS_VALUE:
            return None
        return self._raw.data[e[4] : e[4] + e[5]]

    def key_str(self) -> str:
        """The key as UTF-8 text; a permanent error naming the record if it
        is null or not UTF-8."""
        return self._text("key", self.key)

    def value_str(self) -> str:
        """The value as UTF-8 text; a permanent error naming the record if it
        is null or not UTF-8."""
        return self._text("value", self.value)

    text = value_str
    """Alias of :meth:`value_str`."""

    def json(self) -> Any:
        """The value parsed as JSON (``dict``, ``list``, ``str``, ``int``,
        ``float``, ``bool`` or ``None``), as strictly as ``serde_json``.

        A null value or invalid JSON is a permanent error that names the
        record and carries its index.
        """
        value = self.value
        if value is None:
            raise self.error("value is null")
        try:
            return from_json(value)
        except ValueError as e:
            raise self.error(f"value is not valid JSON: {json_reason(e)}") from None

    @property
    def headers(self) -> Headers:
        """The record's headers in their original order, as ``(name, value)``
        pairs with ``None`` for a null header value."""
        e = self._entry
        return Headers(self._raw, e[6], e[7])

    def header(self, name: str) -> bytes | None:
        """The value of the last header called ``name`` (Kafka's
        ``lastHeader``); ``None`` if there is none or its value is null."""
        return self.headers.get(name)

    def error(self, reason: object) -> Permanent:
        """A permanent error about this record: names its topic, partition and
        offset and carries its index. ``raise record.error("bad price")``."""
        err = Permanent(
            f"{reason} (topic {self.topic}, partition {self.partition}, offset {self.offset})"
        )
        err.at_record(self._index)
        return err

    def _text(self, what: str, data: bytes | None) -> str:
        if data is None:
            raise self.error(f"{what} is null")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.error(f"{what} is not UTF-8: {utf8_reason(e)}") from None

    def __repr__(self) -> str:
        key, value = self.key, self.value
        return (
            f"Record(topic={self.topic!r}, partition={self.partition}, offset={self.offset}, "
            f"index={self._index}, timestamp={self.timestamp}, "
            f"key_len={None if key is None else len(key)}, "
            f"value_len={None if value is None else len(value)}, headers={self._entry[7]})"
        )


def json_reason(err: ValueError) -> str:
    """Why :func:`ingesta.from_json` refused a text, with the position when known."""
    if isinstance(err, json.JSONDecodeError):
        return describe_json_error(err)
    return str(err)


def utf8_reason(err: UnicodeDecodeError) -> str:
    """``err`` worded like Rust's ``Utf8Error``."""
    if err.reason == "unexpected end of data":
        return f"incomplete utf-8 byte sequence from index {err.start}"
    return f"invalid utf-8 sequence of {err.end - err.start} bytes from index {err.start}"


class Headers(Sequence[tuple[str, "bytes | None"]]):
    """A record's headers, in order: a sequence of ``(name, value)`` pairs
    with ``None`` for a null value. Names may repeat (Kafka allows it)."""

    __slots__ = ("_raw", "_start", "_count")

    def __init__(self, raw: RawBatch, start: int, count: int) -> None:
        self._raw = raw
        self._start = start
        self._count = count

    def _resolve(self, i: int) -> tuple[str, bytes | None]:
        raw = self._raw
        data = raw.data
        ns, nl, vs, vl, a = HEADER_STRUCT.unpack_from(
            raw.headers, (self._start + i) * HEADER_ENTRY_SIZE
        )
        # The host guarantees UTF-8 names; should one slip through, a
        # replacement character is kinder than failing on every retry.
        name = data[ns : ns + nl].decode("utf-8", "replace")
        return name, (data[vs : vs + vl] if a & HAS_VALUE else None)

    def __len__(self) -> int:
        """Number of headers."""
        return self._count

    @overload
    def __getitem__(self, index: int) -> tuple[str, bytes | None]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[str, bytes | None]]: ...

    def __getitem__(
        self, index: int | slice
    ) -> tuple[str, bytes | None] | list[tuple[str, bytes | None]]:
        """The header at position ``index``."""
        if isinstance(index, slice):
            return [self._resolve(i) for i in range(*index.indices(self._count))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(f"header index {index} out of range for {self._count} headers")
        return self._resolve(index)

    def __iter__(self) -> Iterator[tuple[str, bytes | None]]:
        """The headers in order."""
        for i in range(self._count):
            yield self._resolve(i)

    def __reversed__(self) -> Iterator[tuple[str, bytes | None]]:
        """The headers, last first."""
        for i in range(self._count - 1, -1, -1):
            yield self._resolve(i)

    def get(self, name: str) -> bytes | None:
        """The value of the last header called ``name``; ``None`` if there is
        none or its value is null."""
        for n, v in reversed(self):
            if n == name:
                return v
        return None

    def get_all(self, name: str) -> list[bytes | None]:
        """The values of every header called ``name``, in order."""
        return [v for n, v in self if n == name]

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"
