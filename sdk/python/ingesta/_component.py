"""Binds a :class:`ingesta.Handler` or :class:`ingesta.Producer` class to the
component's export; the only module that touches the generated bindings.

``ingesta build`` writes an entry module that calls :func:`export_consumer`
or :func:`export_producer` and names the result ``Handler`` or ``Source``,
the class componentize-py expects for the ``handler`` and ``source``
interfaces. ``wit_world`` exists only while componentize-py builds the
component, so it is imported here, lazily, and nowhere else.

componentize-py runs module top-level code at build time, where there is no
host to call, and snapshots the result. The entry module imports this module
before the user's, so importing it installs :class:`ingesta._host.PendingHost`:
config, emit and logging used at import time raise a clear error (failing
the build) instead of snapshotting an empty configuration or losing output.
The real host is installed on the first call, with a fresh config cache and
an empty outbox, and the user's class is instantiated then, when
configuration can be read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from . import _host, config
from .emit import OUTBOX
from .errors import Error, ErrorClass, from_json_error
from .handler import Handler, run
from .producer import Producer, Request, Response, Tick, run_request, run_tick

T = TypeVar("T")

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


def _build_time() -> _WasmHost:
    """Installs the pending host (there is no host until the first call) and
    returns the real one, made now so that the bindings are imported at
    build time, to install with :func:`_begin_call`."""
    real = _WasmHost()
    _host.install(_host.PendingHost())
    return real


def _begin_call(real: _WasmHost) -> None:
    """Installs ``real`` if it is not yet: the first call of the instance.
    Anything cached or buffered before (at build time) is dropped."""
    if _host.current() is not real:
        _host.install(real)
        config.reset_cache()
        OUTBOX.discard()


def _create(cls: Callable[[], T], slot: list[T]) -> T:
    """The instance's handler object: ``cls()`` on the first call (and on
    each later call until it succeeds), under the same error handling as a
    call: an :class:`ingesta.Error` (such as ``config.require`` of a missing
    key) fails the call, invalid JSON is a permanent error, and anything
    emitted before the failure is discarded."""
    if not slot:
        try:
            slot.append(cls())
        except json.JSONDecodeError as err:
            OUTBOX.discard()
            raise from_json_error(err) from err
        except BaseException:
            OUTBOX.discard()
            raise
    return slot[0]


def _check_methods(cls: type, base: type, methods: tuple[str, str], what: str) -> None:
    """Refuses, at build time, a class that overrides none of ``methods``: it
    would accept every call and do nothing (a misspelled method name)."""
    if all(getattr(cls, m) is getattr(base, m) for m in methods):
        first, second = methods
        raise TypeError(
            f"{cls.__module__}.{cls.__qualname__} overrides neither {first} nor {second}, "
            f"so as a {what} it would do nothing with every call; check the method names"
        )


try:  # At build time (and in the component) the bindings exist; natively not.
    import wit_world  # noqa: F401
except ImportError:
    pass
else:
    _host.install(_host.PendingHost())


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

    An :class:`ingesta.Error` (also one raised by ``cls()``, which is then
    tried again on the next call) becomes the call's ``handler-error``; any
    other exception traps the instance (its traceback is written to the
    deployment's log), as a panic does in Rust. A class that overrides
    neither ``on_record`` nor ``on_batch`` is refused with a
    :class:`TypeError` (failing the build).
    """
    from wit_world import exports

    _check_class(cls, Handler, "consumer")
    _check_methods(cls, Handler, ("on_record", "on_batch"), "consumer")
    real = _build_time()
    slot: list[Handler] = []

    class Export(exports.Handler):
        """componentize-py's ``Handler`` for the ``handler`` interface."""

        def handle(self, batch: Any) -> None:
            """The exported ``handle``."""
            _begin_call(real)
            try:
                run(_create(cls, slot), batch)
            except Error as err:
                raise _to_wit_error(err) from None

    Export.__name__ = Export.__qualname__ = "Handler"
    return Export


def export_producer(cls: type[Producer]) -> type:
    """The export class for the ``producer`` world: one ``cls()`` per
    instance, created on the first request or tick and kept across calls.

    Errors and other exceptions are treated as in :func:`export_consumer`.
    A class that overrides neither ``on_request`` nor ``on_tick`` is refused
    with a :class:`TypeError` (failing the build).
    """
    from wit_world import exports

    _check_class(cls, Producer, "producer")
    _check_methods(cls, Producer, ("on_request", "on_tick"), "producer")
    real = _build_time()
    slot: list[Producer] = []

    def producer() -> Producer:
        _begin_call(real)
        return _create(cls, slot)

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
