"""The only code that calls the host's imports (``emit``, ``log``, ``config``).

Inside a component, :mod:`ingesta._component` installs :class:`PendingHost`
while the component is built (componentize-py runs module top-level code at
build time, where there is no host), and a backend that calls the WIT
imports on the first call. Everywhere else the calls go to
:class:`NativeHost`, an in-memory stand-in, so the rest of the SDK (and
handlers built on it) runs under plain ``python -m unittest``;
:mod:`ingesta.testing` drives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .errors import Permanent

if TYPE_CHECKING:
    from .log import Level


@dataclass
class WireOutbox:
    """An outbox in WIT layout (the ``outbox`` record of ``types.wit``)."""

    topics: list[str]
    data: bytes
    records: bytes
    headers: bytes


class Host(Protocol):
    """What the SDK needs from its host."""

    def emit(self, outbox: WireOutbox) -> None:
        """Queues ``outbox``; raises :class:`ingesta.Permanent` if refused."""

    def log(self, level: Level, message: str) -> None:
        """Writes one log line."""

    def config_entries(self) -> list[tuple[str, str]]:
        """Every config key and value, sorted by key."""


def topic_not_allowed(topic: str) -> Permanent:
    """The error of an emit refused for an ungranted topic."""
    return Permanent(f"emit refused: topic {topic} is not granted to this deployment")


def malformed(reason: str) -> Permanent:
    """The error of an emit refused as malformed."""
    return Permanent(f"emit refused: malformed outbox: {reason}")


def limit_exceeded(reason: str) -> Permanent:
    """The error of an emit refused for exceeding the output limit."""
    return Permanent(f"emit refused: output limit exceeded: {reason}")


@dataclass
class NativeHost:
    """What a native "host" has seen and how it should answer."""

    config: list[tuple[str, str]] = field(default_factory=list)
    emitted: list[WireOutbox] = field(default_factory=list)
    logs: list[tuple[Level, str]] = field(default_factory=list)
    deny_topic: str | None = None
    """Refuse emits to this topic, as a host would for an ungranted one."""

    def emit(self, outbox: WireOutbox) -> None:
        """Records ``outbox``, or refuses it if it names :attr:`deny_topic`."""
        if self.deny_topic is not None and self.deny_topic in outbox.topics:
            raise topic_not_allowed(self.deny_topic)
        self.emitted.append(outbox)

    def log(self, level: Level, message: str) -> None:
        """Records the line."""
        self.logs.append((level, message))

    def config_entries(self) -> list[tuple[str, str]]:
        """A copy of :attr:`config`."""
        return list(self.config)


def unavailable(what: str) -> Permanent:
    """The error of a host call made before the component's first call."""
    return Permanent(
        f"{what} is only available during a call: use it in on_record or on_batch "
        "(on_request or on_tick in a producer), or in __init__, which runs on the "
        "first call, never at import time (ingesta build runs module top-level "
        "code while building the component, where there is no deployment)"
    )


class PendingHost:
    """The host of a component before its first call, that is while
    componentize-py runs module top-level code at build time: there is no
    deployment, so every call raises :func:`unavailable` (instead of
    snapshotting an empty configuration or losing output)."""

    def emit(self, outbox: WireOutbox) -> None:
        """Refuses: there is no call to publish for."""
        raise unavailable("emit")

    def log(self, level: Level, message: str) -> None:
        """Refuses: there is no deployment log yet."""
        raise unavailable("logging")

    def config_entries(self) -> list[tuple[str, str]]:
        """Refuses: there is no deployment configuration yet."""
        raise unavailable("config")


_host: Host = NativeHost()

pending = False
"""Whether :class:`PendingHost` is installed (checked on every emit, which
only reaches the host when the outbox is flushed)."""


def install(host: Host) -> None:
    """Makes ``host`` the one every call goes to."""
    global _host, pending
    _host = host
    pending = isinstance(host, PendingHost)


def current() -> Host:
    """The installed host."""
    return _host


def emit(outbox: WireOutbox) -> None:
    """Hands ``outbox`` to the host; raises :class:`ingesta.Permanent` if refused."""
    _host.emit(outbox)


def log(level: Level, message: str) -> None:
    """Writes one line to the host's log."""
    _host.log(level, message)


def config_entries() -> list[tuple[str, str]]:
    """The host's config entries."""
    return _host.config_entries()
