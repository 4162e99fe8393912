"""Running handlers and producers natively, for unit tests.

Batches are laid out byte for byte as the host sends them, calls end exactly
as they do in a component (output published only on success), and a
stand-in host captures emitted records and log lines and serves the
configuration::

    import unittest
    from ingesta import testing
    from ingesta.testing import TestBatch

    class UpperTest(unittest.TestCase):
        def setUp(self):
            testing.reset()

        def test_shouts(self):
            testing.set_config({"output_topic": "shouty"})
            batch = TestBatch("words", 0).record("k", "hi").record("k", "yo")
            out = testing.run(Upper(), batch)
            self.assertEqual(out[0].value_str(), "HI")
            self.assertEqual(out[1].topic, "shouty")

The stand-in host is per process (unlike Rust's per-thread one), so call
:func:`reset` in ``setUp`` to keep tests from seeing each other's
configuration and logs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import _host, config
from . import log as _log
from ._abi import (
    HeaderEntry,
    OutgoingEntry,
    RecordEntry,
    Span,
    TimestampKind,
    OUTGOING_ENTRY_SIZE,
)
from ._host import NativeHost, WireOutbox
from ._json import from_json
from .batch import Batch, TimestampType
from .emit import OUTBOX, Payload
from .errors import Permanent
from .handler import Handler
from .handler import run as _run_handler
from .log import Level
from .producer import Producer, Request, Response, Tick
from .producer import run_request as _run_request
from .producer import run_tick as _run_tick

__all__ = [
    "TestBatch",
    "TestRecord",
    "Emitted",
    "run",
    "run_request",
    "run_tick",
    "set_config",
    "deny_topic",
    "take_logs",
    "reset",
    "decode",
]


def _owned(value: Payload) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)


@dataclass
class WireBatch:
    """A batch in WIT layout (the ``batch`` record of ``types.wit``)."""

    topic: str
    partition: int
    data: bytes
    records: bytes
    headers: bytes


class TestRecord:
    """One record for a :class:`TestBatch`; the builder methods return ``self``."""

    __test__ = False  # not a unittest/pytest test class

    def __init__(self, key: Payload = None, value: Payload = None) -> None:
        self.key = _owned(key)
        self.value = _owned(value)
        self.headers: list[tuple[str, bytes | None]] = []
        self.timestamp_value: tuple[int, TimestampType] | None = None
        self.offset_value: int | None = None

    def header(self, name: str, value: Payload) -> TestRecord:
        """Appends a header (``None`` for a null value)."""
        self.headers.append((name, _owned(value)))
        return self

    def timestamp(self, millis: int, kind: TimestampType = TimestampType.CREATE_TIME) -> TestRecord:
        """Sets the timestamp (ms since the Unix epoch) and its kind."""
        self.timestamp_value = (millis, kind)
        return self

    def offset(self, offset: int) -> TestRecord:
        """Overrides the offset (otherwise the batch assigns the next one)."""
        self.offset_value = offset
        return self


class TestBatch:
    """A batch assembled in memory, laid out exactly as the host sends one.
    Records get offsets from 0 (or from :meth:`at_offset`); the builder
    methods return ``self``."""

    __test__ = False  # not a unittest/pytest test class

    def __init__(self, topic: str = "in", partition: int = 0) -> None:
        self.topic = topic
        self.partition = partition
        self._data = bytearray()
        self._records = bytearray()
        self._headers = bytearray()
        self._header_count = 0
        self._next_offset = 0

    def at_offset(self, offset: int) -> TestBatch:
        """The next record added gets ``offset`` (later ones count up from it)."""
        self._next_offset = offset
        return self

    def record(self, key: Payload, value: Payload) -> TestBatch:
        """Adds a record with no headers and no timestamp."""
        return self.push(TestRecord(key, value))

    def push(self, record: TestRecord) -> TestBatch:
        """Adds a fully specified record."""
        offset = record.offset_value if record.offset_value is not None else self._next_offset
        self._next_offset = offset + 1
        header_start = self._header_count
        for name, value in record.headers:
            HeaderEntry(
                Span.append(self._data, name.encode("utf-8")),
                None if value is None else Span.append(self._data, value),
            ).encode(self._headers)
            self._header_count += 1
        key = None if record.key is None else Span.append(self._data, record.key)
        value = None if record.value is None else Span.append(self._data, record.value)
        kind, ts = TimestampKind.NOT_AVAILABLE, 0
        if record.timestamp_value is not None:
            ts, ts_type = record.timestamp_value
            kind = {
                TimestampType.NOT_AVAILABLE: TimestampKind.NOT_AVAILABLE,
                TimestampType.CREATE_TIME: TimestampKind.CREATE_TIME,
                TimestampType.LOG_APPEND_TIME: TimestampKind.LOG_APPEND_TIME,
            }[ts_type]
        RecordEntry(
            offset=offset,
            timestamp_kind=kind,
            timestamp=ts,
            key=key,
            value=value,
            header_start=header_start,
            header_count=self._header_count - header_start,
        ).encode(self._records)
        return self

    def raw(self) -> WireBatch:
        """The batch in WIT layout, as the host hands it to the component."""
        return WireBatch(
            self.topic,
            self.partition,
            bytes(self._data),
            bytes(self._records),
            bytes(self._headers),
        )

    def as_batch(self) -> Batch:
        """The batch as a handler sees it, e.g. to call ``on_record`` directly."""
        return Batch(self.raw())


@dataclass
class Emitted:
    """A record the handler published."""

    topic: str
    """Destination topic."""
    key: bytes | None = None
    """Key bytes, ``None`` for null."""
    value: bytes | None = None
    """Value bytes, ``None`` for null."""
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    """Headers in order, values ``None`` for null."""

    def key_str(self) -> str | None:
        """The key as text; ``None`` if null (``UnicodeDecodeError`` if not UTF-8)."""
        return None if self.key is None else self.key.decode("utf-8")

    def value_str(self) -> str | None:
        """The value as text; ``None`` if null (``UnicodeDecodeError`` if not UTF-8)."""
        return None if self.value is None else self.value.decode("utf-8")

    def value_json(self) -> Any:
        """The value parsed as JSON (``AssertionError`` if it is null)."""
        assert self.value is not None, "value is null"
        return from_json(self.value)


def _native() -> NativeHost:
    host = _host.current()
    if not isinstance(host, NativeHost):
        raise RuntimeError("ingesta.testing needs the native stand-in host, not a component's")
    return host


def _capture(call: Any) -> tuple[Any, list[Emitted]]:
    """Runs ``call`` against the stand-in host and collects what it published.
    Output emitted outside a call is discarded first."""
    host = _native()
    OUTBOX.discard()
    host.emitted.clear()
    try:
        result = call()
    finally:
        outboxes, host.emitted = host.emitted, []
    return result, [e for o in outboxes for e in decode(o)]


def run(handler: Handler, batch: TestBatch) -> list[Emitted]:
    """Runs one call of ``handler`` on ``batch``, as the runner would: returns
    every record the call published, in order; raises the handler's
    :class:`ingesta.Error` on failure (and, as with the real host, publishes
    nothing). Other exceptions propagate unchanged (in a component they
    would trap the instance)."""
    _, out = _capture(lambda: _run_handler(handler, batch.raw()))
    return out


def run_request(producer: Producer, request: Request) -> tuple[Response, list[Emitted]]:
    """Runs one request through ``producer``, as the runner would: returns the
    response and every record the call published (none for a status of 400
    or more, not even records flushed early); raises the producer's
    :class:`ingesta.Error` on failure. A status outside 200-599 raises the
    permanent error the runner reports for it (``the module answered with
    status S, which is not a final HTTP status (200-599); nothing was
    published``)."""
    response, out = _capture(lambda: _run_request(producer, request))
    if not 200 <= response.status <= 599:
        raise Permanent(
            f"the module answered with status {response.status}, which is not a final "
            "HTTP status (200-599); nothing was published"
        )
    if response.status >= 400:
        # The runner publishes nothing of a refusal, early flushes included.
        return response, []
    return response, out


def run_tick(producer: Producer, tick: Tick | None = None) -> list[Emitted]:
    """Runs one tick (default ``Tick()``: seq 0) through ``producer``, as the
    runner would: returns every record the call published; raises the
    producer's :class:`ingesta.Error` on failure."""
    _, out = _capture(lambda: _run_tick(producer, tick if tick is not None else Tick()))
    return out


def set_config(entries: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
    """Sets the deployment configuration seen by :mod:`ingesta.config`
    (replacing any earlier one)."""
    items = entries.items() if isinstance(entries, Mapping) else entries
    _native().config = [(str(k), str(v)) for k, v in items]
    config.reset_cache()


def deny_topic(topic: str | None) -> None:
    """Makes the stand-in host refuse outboxes that name ``topic``, as the real
    one does for a topic the deployment is not granted; ``None`` lifts it."""
    _native().deny_topic = topic


def take_logs() -> list[tuple[Level, str]]:
    """Takes the log lines written so far."""
    host = _native()
    logs, host.logs = host.logs, []
    return logs


def reset() -> None:
    """A fresh stand-in host: no configuration, no logs, no denied topic, log
    level back to ``TRACE``, nothing buffered."""
    _host.install(NativeHost())
    config.reset_cache()
    _log.set_max_level(Level.TRACE)
    OUTBOX.discard()


def decode(outbox: WireOutbox) -> list[Emitted]:
    """Reads an outbox back into records, checking every span on the way."""
    assert len(outbox.records) % OUTGOING_ENTRY_SIZE == 0, "records is not whole entries"

    def span_bytes(span: Span) -> bytes:
        got = span.get(outbox.data)
        assert got is not None, "span points outside the outbox"
        return got

    out = []
    for i in range(OutgoingEntry.count(outbox.records)):
        entry = OutgoingEntry.read(outbox.records, i)
        assert entry is not None
        headers = []
        for h in range(entry.header_start, entry.header_start + entry.header_count):
            header = HeaderEntry.read(outbox.headers, h)
            assert header is not None, "header index points outside the outbox"
            name = span_bytes(header.name).decode("utf-8")
            headers.append((name, None if header.value is None else span_bytes(header.value)))
        out.append(
            Emitted(
                topic=outbox.topics[entry.topic],
                key=None if entry.key is None else span_bytes(entry.key),
                value=None if entry.value is None else span_bytes(entry.value),
                headers=headers,
            )
        )
    return out
