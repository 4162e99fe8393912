"""The only code that calls the host's imports (``emit``, ``log``, ``config``).

Inside a component, :mod:`ingesta._component` installs a backend that calls
the WIT imports. Everywhere else the calls go to :class:`NativeHost`, an
in-memory stand-in, so the rest of the SDK (and handlers built on it) runs
under plain ``python -m unittest``; :mod:`ingesta.testing` drives it.
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


_host: Host = NativeHost()


def install(host: Host) -> None:
    """Makes ``host`` the one every call goes to."""
    global _host
    _host = host


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
