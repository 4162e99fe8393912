"""The :class:`Producer` base class (WIT world ``producer``): turn HTTP requests
and timer ticks into records; with :class:`Request`, :class:`Response`,
:class:`Tick` and the per-call dispatch behind
:func:`ingesta._component.export_producer`.

Emitting works exactly as in a consumer (:func:`ingesta.emit`,
:class:`ingesta.Message`...): records are buffered during the call and
published only if it succeeds. For a request, success means a
:class:`Response` with a status below 400; the runner answers the caller
only after Kafka has acknowledged every record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from ._json import from_json, to_json
from .batch import json_reason, utf8_reason
from .emit import end_call
from .errors import Permanent, from_json_error

__all__ = ["Producer", "Request", "Response", "Tick"]


def _bytes(value: str | bytes | bytearray | memoryview, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be str or bytes-like, not {type(value).__name__}")


class Request:
    """An HTTP request sent to ``/v1/ingest/<deployment>[/<path>]``.

    Tests build one with ``Request("POST", "/events?x=1", b"body")`` (the
    query is split off the path) and add headers with :meth:`with_header`.
    """

    __slots__ = ("_method", "_path", "_query", "_headers", "_body")

    def __init__(
        self,
        method: str,
        path: str = "/",
        body: str | bytes | bytearray | memoryview = b"",
        *,
        headers: Iterable[tuple[str, str | bytes]] = (),
        query: str | None = None,
    ) -> None:
        if query is None:
            path, _, query = path.partition("?")
        self._method = method
        self._path = path
        self._query = query
        self._headers: list[tuple[str, bytes]] = [
            (name.lower(), _bytes(value, f"header {name}")) for name, value in headers
        ]
        self._body = _bytes(body, "body")

    @classmethod
    def _from_wit(cls, method: str, path: str, query: str, headers: list[tuple[str, bytes]],
                  body: bytes) -> Request:
        r = cls.__new__(cls)
        r._method, r._path, r._query, r._headers, r._body = method, path, query, headers, body
        return r

    def with_header(self, name: str, value: str | bytes) -> Request:
        """This request with one more header (its name is lower-cased)."""
        self._headers.append((name.lower(), _bytes(value, f"header {name}")))
        return self

    @property
    def method(self) -> str:
        """``POST``, ``PUT``, ``GET``..."""
        return self._method

    @property
    def path(self) -> str:
        """What follows the deployment's name in the URL (``/`` when nothing)."""
        return self._path

    @property
    def query(self) -> str:
        """The raw query string, without ``?``."""
        return self._query

    def query_param(self, name: str) -> str | None:
        """The first value of query parameter ``name``, as written (not
        percent-decoded); ``""`` for a parameter without ``=``."""
        for pair in self._query.split("&"):
            key, _, value = pair.partition("=")
            if key == name:
                return value
        return None

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        """Every header, names in lower case, in arrival order (the
        ``authorization`` header is never passed on)."""
        return self._headers

    def header(self, name: str) -> bytes | None:
        """The first value of header ``name`` (any case)."""
        name = name.lower()
        for key, value in self._headers:
            if key.lower() == name:
                return value
        return None

    def header_str(self, name: str) -> str | None:
        """The first value of header ``name`` as text, if it is UTF-8."""
        value = self.header(name)
        if value is None:
            return None
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None

    @property
    def body(self) -> bytes:
        """The body."""
        return self._body

    def body_str(self) -> str:
        """The body as UTF-8 text; a permanent error (400) if it is not."""
        try:
            return self._body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise Permanent(f"request body is not UTF-8: {utf8_reason(e)}") from None

    text = body_str
    """Alias of :meth:`body_str`."""

    def json(self) -> Any:
        """The body parsed as JSON; a permanent error (400) saying where it
        fails if it is not."""
        try:
            return from_json(self._body)
        except ValueError as e:
            raise Permanent(f"request body is not valid JSON: {json_reason(e)}") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return (self._method, self._path, self._query, self._headers, self._body) == (
            other._method, other._path, other._query, other._headers, other._body)

    def __repr__(self) -> str:
        return (
            f"Request(method={self._method!r}, path={self._path!r}, query={self._query!r}, "
            f"headers={self._headers!r}, body={self._body!r})"
        )


@dataclass(frozen=True)
class Response:
    """The answer to a request, sent once every emitted record is acknowledged.

    Build one with the constructors (:meth:`ok`, :meth:`accepted`,
    :meth:`text`, :meth:`json`) and refine it with :meth:`with_header`,
    :meth:`with_body`, :meth:`with_status`, which return a new response.
    """

    status: int
    """HTTP status; 400 or more publishes nothing of the call."""
    headers: tuple[tuple[str, str], ...] = ()
    """Extra headers."""
    body: bytes = b""
    """The body."""

    @classmethod
    def new(cls, status: int) -> Response:
        """An empty response with ``status``."""
        return cls(status)

    @classmethod
    def ok(cls) -> Response:
        """``200 OK``, empty."""
        return cls(200)

    @classmethod
    def accepted(cls) -> Response:
        """``202 Accepted``, empty: the usual answer of an ingestion endpoint."""
        return cls(202)

    @classmethod
    def text(cls, status: int, body: str) -> Response:
        """``status`` with a plain-text body."""
        return cls(status, (("content-type", "text/plain; charset=utf-8"),), body.encode("utf-8"))

    @classmethod
    def json(cls, status: int, value: Any) -> Response:
        """``status`` with ``value`` serialized as the JSON body (as
        ``serde_json`` would write it); a permanent error if it cannot be."""
        try:
            body = to_json(value)
        except (TypeError, ValueError, RecursionError) as e:
            raise Permanent(f"cannot serialize the response: {e}") from None
        return cls(status, (("content-type", "application/json"),), body)

    def with_header(self, name: str, value: str) -> Response:
        """This response with one more header."""
        return replace(self, headers=(*self.headers, (name, value)))

    def with_body(self, body: str | bytes) -> Response:
        """This response with ``body``."""
        return replace(self, body=_bytes(body, "body"))

    def with_status(self, status: int) -> Response:
        """This response with ``status``."""
        return replace(self, status=status)


@dataclass(frozen=True)
class Tick:
    """A scheduled call of a generator deployment."""

    seq: int = 0
    """Ticks since the deployment started on this runner, from 0."""
    scheduled_ms: int = 0
    """When the tick was due, ms since the Unix epoch."""
    interval_ms: int = 1000
    """The deployment's ``schedule.interval_ms``."""


class Producer:
    """A producer module: answers HTTP requests and/or timer ticks by emitting
    records. Override :meth:`on_request`, :meth:`on_tick` or both.

    One object lives per instance, created (with no arguments) on its first
    call and kept across calls. The runner keeps a small pool of instances
    per deployment for requests (so concurrent requests see different
    objects) and one instance for ticks (so a generator can keep counters
    and random state from tick to tick).
    """

    def on_request(self, request: Request) -> Response:
        """Handles one HTTP request. The default refuses it, for generator-only
        modules.

        :class:`ingesta.Permanent` answers 400 with its message,
        :class:`ingesta.Retryable` 503 with ``Retry-After``; either way
        nothing emitted is published, and neither is it for a returned
        status of 400 or more.
        """
        raise Permanent("this module does not accept HTTP requests (it has no on_request)")

    def on_tick(self, tick: Tick) -> None:
        """Handles one tick of the deployment's schedule. The default refuses
        it, for ingestion-only modules."""
        raise Permanent(
            "this module does not handle ticks (it has no on_tick); "
            "deploy it without a schedule"
        )


def run_request(producer: Producer, request: Request) -> Response:
    """Runs one request: the producer, then the single flush of its output."""

    def call() -> Response:
        try:
            response = producer.on_request(request)
        except json.JSONDecodeError as err:
            raise from_json_error(err) from err
        if not isinstance(response, Response):
            raise TypeError(
                f"on_request must return an ingesta.Response, not {type(response).__name__}"
            )
        return response

    # A status of 400 or more is a refusal: nothing of it is published.
    return end_call(call, lambda r: r.status < 400)


def run_tick(producer: Producer, tick: Tick) -> None:
    """Runs one tick: the producer, then the single flush of its output."""

    def call() -> None:
        try:
            producer.on_tick(tick)
        except json.JSONDecodeError as err:
            raise from_json_error(err) from err

    end_call(call, lambda _: True)
