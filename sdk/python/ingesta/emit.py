"""Publishing: :func:`emit`, :func:`emit_json`, :func:`forward`, :class:`Message`
and the per-instance outbox they append to.

Every emitted record goes into one outbox laid out like the WIT ``outbox``
(one byte buffer plus fixed-size entries), and the whole call's output
crosses to the host in a single ``emit`` call when the handler returns
successfully (or earlier, in 4 MiB pieces, for calls that fan out heavily;
the host still publishes nothing of a call that fails). A call that fails
(an exception, or a producer response with status 400 or more) discards its
buffered output.

Keys, values and header values are *payloads*: ``str`` (written as UTF-8),
``bytes``, ``bytearray``, ``memoryview``, or ``None`` for null.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Set
from typing import TYPE_CHECKING, Any, TypeVar, Union

from . import _host
from ._abi import HAS_KEY, HAS_VALUE, HEADER_STRUCT, OUTGOING_STRUCT
from ._host import WireOutbox
from ._json import to_json
from .errors import Error, Permanent

if TYPE_CHECKING:
    from .batch import Record

__all__ = ["Payload", "emit", "emit_json", "forward", "Message"]

Payload = Union[str, bytes, bytearray, memoryview, None]
"""What a key, value or header value can be published from (``None`` is null)."""

HeaderPairs = Union[Mapping[str, Payload], Iterable[tuple[str, Payload]]]
"""Headers to publish: ``(name, value)`` pairs in order, e.g. a record's
:attr:`ingesta.Record.headers` or a list of tuples, or a mapping such as
``{"id": "7"}`` (its items, in order; a mapping cannot repeat a name)."""

FLUSH_THRESHOLD = 4 << 20
"""Buffered output above which the outbox is handed to the host early, to
bound guest memory on batches that fan out heavily."""

_U32_MAX = 0xFFFF_FFFF
T = TypeVar("T")


def _header_pairs(
    headers: HeaderPairs,
) -> list[tuple[bytes, bytes | bytearray | memoryview | None]]:
    """``headers`` as encoded ``(name, value)`` pairs; :class:`TypeError`
    naming the problem if it is not a mapping or an ordered iterable of
    pairs."""
    if isinstance(headers, Mapping):
        items: Iterable[Any] = headers.items()
    elif isinstance(headers, (str, bytes, bytearray, memoryview, Set)) or not isinstance(
        headers, Iterable
    ):
        raise TypeError(
            "headers must be a mapping or a sequence of (name, value) pairs, "
            f"not {type(headers).__name__}"
        )
    else:
        items = headers
    pairs: list[tuple[bytes, bytes | bytearray | memoryview | None]] = []
    for pair in items:
        if not isinstance(pair, (tuple, list)):
            raise TypeError(f"each header must be a (name, value) pair, not {type(pair).__name__}")
        if len(pair) != 2:
            raise TypeError(
                f"each header must be a (name, value) pair, not a {type(pair).__name__} "
                f"of {len(pair)} items"
            )
        name, hv = pair
        if not isinstance(name, str):
            raise TypeError(f"header name must be str, not {type(name).__name__}")
        pairs.append((name.encode("utf-8"), _payload(hv, f"header {name}")))
    return pairs


def _payload(value: Payload, what: str) -> bytes | bytearray | memoryview | None:
    if value is None or isinstance(value, (bytes, bytearray, memoryview)):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(
        f"{what} must be str, bytes, bytearray, memoryview or None, not {type(value).__name__}"
    )


class Outbox:
    """The buffered output of the current call, in WIT layout."""

    def __init__(self) -> None:
        self.topics: list[str] = []
        self._topic_index: dict[str, int] = {}
        self.data = bytearray()
        self.records = bytearray()
        self.headers = bytearray()
        self._header_count = 0
        self.refused: str | None = None
        """Set when an early flush was refused: the host fails the call
        anyway, so later records are dropped and the call reports this."""

    def push(
        self,
        topic: str,
        key: Payload,
        value: Payload,
        headers: HeaderPairs | None = None,
        *,
        value_bytes: bytes | None = None,
    ) -> None:
        """Appends one record (validating every part before writing any).
        Outside a call in a component (at build time) it raises
        :class:`ingesta.Permanent`: there is no call to publish for."""
        if _host.pending:
            raise _host.unavailable("emit")
        if not isinstance(topic, str):
            raise TypeError(f"topic must be str, not {type(topic).__name__}")
        k = _payload(key, "key")
        v = value_bytes if value_bytes is not None else _payload(value, "value")
        pairs = [] if headers is None else _header_pairs(headers)
        if self.refused is not None:
            return
        data = self.data
        attributes = 0
        ks = kl = vs = vl = 0
        if k is not None:
            ks, kl = len(data), len(k)
            data += k
            attributes |= HAS_KEY
        if v is not None:
            vs, vl = len(data), len(v)
            data += v
            attributes |= HAS_VALUE
        header_start = self._header_count
        for name_bytes, hv in pairs:
            ns, nl = len(data), len(name_bytes)
            data += name_bytes
            if hv is None:
                self.headers += HEADER_STRUCT.pack(ns, nl, 0, 0, 0)
            else:
                self.headers += HEADER_STRUCT.pack(ns, nl, len(data), len(hv), HAS_VALUE)
                data += hv
            self._header_count += 1
        if len(data) > _U32_MAX:
            raise OverflowError("outbox exceeds the 4 GiB the WIT layout can address")
        index = self._topic_index.get(topic)
        if index is None:
            index = self._topic_index[topic] = len(self.topics)
            self.topics.append(topic)
        self.records += OUTGOING_STRUCT.pack(
            index, ks, kl, vs, vl, header_start, self._header_count - header_start, attributes
        )

    def buffered_bytes(self) -> int:
        """Bytes of keys, values and headers buffered so far."""
        return len(self.data)

    def wire(self) -> WireOutbox:
        """A snapshot of the buffered records in WIT layout."""
        return WireOutbox(
            topics=list(self.topics),
            data=bytes(self.data),
            records=bytes(self.records),
            headers=bytes(self.headers),
        )

    def flush(self, sink: Callable[[WireOutbox], None]) -> None:
        """Hands the buffered records to ``sink`` (unless there are none) and
        clears the buffers. A refusal is remembered and reported by
        :meth:`finish`."""
        if self.refused is None and self.records:
            try:
                sink(self.wire())
            except Error as err:
                self.refused = err.message
        self._clear()

    def finish(self, sink: Callable[[WireOutbox], None]) -> None:
        """Flushes what is left; raises :class:`ingesta.Permanent` if the host
        refused any of this call's output. Leaves the outbox empty."""
        self.flush(sink)
        refused, self.refused = self.refused, None
        if refused is not None:
            raise Permanent(refused)

    def discard(self) -> None:
        """Drops buffered output and any refusal: the call failed, so the host
        publishes nothing of it regardless."""
        self._clear()
        self.refused = None

    def _clear(self) -> None:
        self.topics.clear()
        self._topic_index.clear()
        self.data.clear()
        self.records.clear()
        self.headers.clear()
        self._header_count = 0


OUTBOX = Outbox()
"""This instance's outbox."""


def _after_push() -> None:
    if OUTBOX.buffered_bytes() >= FLUSH_THRESHOLD:
        OUTBOX.flush(_host.emit)


def emit(topic: str, key: Payload, value: Payload, headers: HeaderPairs | None = None) -> None:
    """Publishes a record to ``topic`` when the current call succeeds.

    ``key`` and ``value`` are ``str``, bytes-like or ``None`` (null);
    ``headers`` is an optional sequence of ``(name, value)`` pairs, e.g.
    ``record.headers`` to carry a record's headers over, or a mapping of
    names to values (published in its order). Records are published in emit
    order::

        emit("greetings", "user-1", "hello")
        emit("copies", record.key, record.value, record.headers)
        emit("tagged", "user-1", "hi", {"source": "web", "id": "7"})
        emit("deletions", record.key, None)  # a tombstone

    Anything else as ``headers`` (a string, a set, pairs of the wrong size)
    raises :class:`TypeError`.

    Should the host refuse the output (a topic the deployment is not
    granted, an output limit), the call fails with a permanent error
    carrying the host's reason, and later emits of the call are dropped.
    """
    OUTBOX.push(topic, key, value, headers)
    _after_push()


def emit_json(
    topic: str, key: Payload, value: Any, headers: HeaderPairs | None = None
) -> None:
    """Publishes ``value`` serialized as JSON (exactly as ``serde_json``
    would write it, see :func:`ingesta.to_json`) to ``topic`` when the
    current call succeeds.

    A value that cannot be serialized raises a permanent error
    ``cannot serialize a record for TOPIC: REASON`` and emits nothing.
    """
    try:
        encoded = to_json(value)
    except (TypeError, ValueError, RecursionError) as e:
        raise Permanent(f"cannot serialize a record for {topic}: {e}") from None
    OUTBOX.push(topic, key, None, headers, value_bytes=encoded)
    _after_push()


def forward(topic: str, record: Record) -> None:
    """Re-publishes a consumed record (key, value and headers, byte for byte)
    to ``topic`` when the current call succeeds."""
    emit(topic, record.key, record.value, record.headers)


class Message:
    """A record to publish, built up step by step::

        Message.to("orders-enriched").key(record.key).value(enriched) \\
            .header("source-offset", str(record.offset)).emit()

    Nothing is published until :meth:`emit` is called. Unset keys and values
    are null.
    """

    __slots__ = ("_topic", "_key", "_value", "_headers", "_forwarded")

    def __init__(self, topic: str) -> None:
        self._topic = topic
        self._key: Payload = None
        self._value: Payload = None
        self._headers: list[tuple[str, Payload]] = []
        self._forwarded: Record | None = None

    @classmethod
    def to(cls, topic: str) -> Message:
        """Starts a record for ``topic``, with a null key and value and no headers."""
        return cls(topic)

    def key(self, key: Payload) -> Message:
        """Sets the key."""
        self._key = key
        return self

    def value(self, value: Payload) -> Message:
        """Sets the value."""
        self._value = value
        return self

    def json(self, value: Any) -> Message:
        """Sets the value to ``value`` as JSON (see :func:`emit_json`)."""
        try:
            self._value = to_json(value)
        except (TypeError, ValueError, RecursionError) as e:
            raise Permanent(f"cannot serialize a record for {self._topic}: {e}") from None
        return self

    def header(self, name: str, value: Payload) -> Message:
        """Appends a header; Kafka allows repeated names."""
        self._headers.append((name, value))
        return self

    def headers_from(self, record: Record) -> Message:
        """Carries over all of ``record``'s headers, ahead of any added with
        :meth:`header`."""
        self._forwarded = record
        return self

    def emit(self) -> None:
        """Queues the record for publishing."""
        headers: list[tuple[str, Payload]] = self._headers
        if self._forwarded is not None:
            headers = [*self._forwarded.headers, *self._headers]
        emit(self._topic, self._key, self._value, headers)


def end_call(call: Callable[[], T], publish: Callable[[T], bool]) -> T:
    """Runs one export call and ends it as the Rust SDK's ``emit::end_call``
    does: hands its buffered output to the host when ``call`` returns and
    ``publish`` accepts its value, and drops it otherwise (on any exception,
    and for a producer's refusal)."""
    try:
        value = call()
    except BaseException:
        OUTBOX.discard()
        raise
    if publish(value):
        OUTBOX.finish(_host.emit)
    else:
        OUTBOX.discard()
    return value
