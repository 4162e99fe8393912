"""Binds a :class:`ingesta.Handler` or :class:`ingesta.Producer` class to the
component's export; the only module that touches the generated bindings.

``ingesta build`` writes an entry module that calls :func:`export_consumer`
or :func:`export_producer` and names the result ``Handler`` or ``Source``,
the class componentize-py expects for the ``handler`` and ``source``
interfaces. ``wit_world`` exists only while componentize-py builds the
component, so it is imported here, lazily, and nowhere else.

componentize-py runs module top-level code at build time, where there is no
host to call. This module therefore only *installs* the wasm host backend
at import time; the user's class is instantiated on the first call, when
configuration can be read.
"""

from __future__ import annotations

from typing import Any

from . import _host
from .errors import Error, ErrorClass
from .handler import Handler, run
from .producer import Producer, Request, Response, Tick, run_request, run_tick

__all__ = ["export_consumer", "export_producer"]


class _WasmHost:
    """Calls the WIT imports."""

    def __init__(self) -> None:
        from componentize_py_types import Err
        from wit_world.imports import config, emit, log, types

        self._Err = Err
        self._emit = emit
        self._log = log
        self._config = config
        self._types = types

    def emit(self, outbox: _host.WireOutbox) -> None:
        """Hands ``outbox`` to the host's ``emit``; a refusal becomes a permanent error."""
        wit = self._types.Outbox(
            topics=outbox.topics,
            data=outbox.data,
            records=outbox.records,
            headers=outbox.headers,
        )
        try:
            self._emit.emit(wit)
        except self._Err as err:
            refusal = err.value
            if isinstance(refusal, self._emit.EmitError_TopicNotAllowed):
                raise _host.topic_not_allowed(refusal.value) from None
            if isinstance(refusal, self._emit.EmitError_LimitExceeded):
                raise _host.limit_exceeded(refusal.value) from None
            raise _host.malformed(str(getattr(refusal, "value", refusal))) from None

    def log(self, level: Any, message: str) -> None:
        """Writes one line with the host's ``log``."""
        self._log.log(self._log.Level(int(level)), message)

    def config_entries(self) -> list[tuple[str, str]]:
        """The host's ``config.entries``."""
        return list(self._config.entries())


def _install() -> None:
    if not isinstance(_host.current(), _WasmHost):
        _host.install(_WasmHost())


def _to_wit_error(err: Error) -> Any:
    from componentize_py_types import Err
    from wit_world.imports import types

    cls = (
        types.ErrorClass.RETRYABLE
        if err.error_class is ErrorClass.RETRYABLE
        else types.ErrorClass.PERMANENT
    )
    return Err(types.HandlerError(class_=cls, message=err.message, record_index=err.record_index))


def _check_class(cls: type, base: type, what: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise TypeError(
            f"[tool.ingesta] handler must name a subclass of ingesta.{base.__name__} "
            f"for a {what}, got {cls!r}"
        )


def export_consumer(cls: type[Handler]) -> type:
    """The export class for the ``consumer`` world: one ``cls()`` per
    instance, created on the first batch and kept across batches.

    An :class:`ingesta.Error` becomes the call's ``handler-error``; any
    other exception traps the instance (its traceback is written to the
    deployment's log), as a panic does in Rust.
    """
    from wit_world import exports

    _check_class(cls, Handler, "consumer")
    _install()
    slot: list[Handler] = []

    class Export(exports.Handler):
        """componentize-py's ``Handler`` for the ``handler`` interface."""

        def handle(self, batch: Any) -> None:
            """The exported ``handle``."""
            if not slot:
                slot.append(cls())
            try:
                run(slot[0], batch)
            except Error as err:
                raise _to_wit_error(err) from None

    Export.__name__ = Export.__qualname__ = "Handler"
    return Export


def export_producer(cls: type[Producer]) -> type:
    """The export class for the ``producer`` world: one ``cls()`` per
    instance, created on the first request or tick and kept across calls.

    Errors and other exceptions are treated as in :func:`export_consumer`.
    """
    from wit_world import exports

    _check_class(cls, Producer, "producer")
    _install()
    slot: list[Producer] = []

    def producer() -> Producer:
        if not slot:
            slot.append(cls())
        return slot[0]

    class Export(exports.Source):
        """componentize-py's ``Source`` for the ``source`` interface."""

        def handle_request(self, request: Any) -> Any:
            """The exported ``handle-request``."""
            from wit_world.exports import source

            req = Request._from_wit(
                request.method, request.path, request.query, list(request.headers),
                bytes(request.body),
            )
            try:
                response: Response = run_request(producer(), req)
            except Error as err:
                raise _to_wit_error(err) from None
            return source.Response(
                status=response.status,
                headers=[(k, v) for k, v in response.headers],
                body=bytes(response.body),
            )

        def handle_tick(self, tick: Any) -> None:
            """The exported ``handle-tick``."""
            t = Tick(seq=tick.seq, scheduled_ms=tick.scheduled_ms, interval_ms=tick.interval_ms)
            try:
                run_tick(producer(), t)
            except Error as err:
                raise _to_wit_error(err) from None

    Export.__name__ = Export.__qualname__ = "Source"
    return Export
