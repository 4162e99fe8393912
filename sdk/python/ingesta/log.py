"""Logging into the deployment's log stream.

Use :func:`trace`, :func:`debug`, :func:`info`, :func:`warn` and
:func:`error`. Like the standard library's :mod:`logging`, they take
``%``-style arguments and format only lines that pass :func:`max_level`::

    from ingesta import log

    log.info("loaded %d rules", len(rules))
    log.warn("skipping record at offset %d", record.offset)

The host bounds and rate-limits lines per deployment, so log per batch
rather than per record. (What a guest writes to stdout and stderr also
reaches the log stream, as ``info`` and ``warn`` lines.)
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum

from . import _host

__all__ = [
    "Level",
    "log",
    "trace",
    "debug",
    "info",
    "warn",
    "error",
    "set_max_level",
    "max_level",
    "enabled",
]


class Level(IntEnum):
    """Severity of a log line, from most to least verbose (values match the
    WIT ``level`` enum)."""

    TRACE = 0
    """Very detailed tracing."""
    DEBUG = 1
    """Diagnostics useful while developing."""
    INFO = 2
    """Normal operational messages."""
    WARN = 3
    """Something unexpected that the handler worked around."""
    ERROR = 4
    """A failure."""


_max_level = Level.TRACE


def set_max_level(level: Level) -> None:
    """Lines below ``level`` are dropped before they are formatted. Default:
    :attr:`Level.TRACE` (everything goes to the host, which filters again)."""
    global _max_level
    _max_level = Level(level)


def max_level() -> Level:
    """The least severe level that is forwarded to the host."""
    return _max_level


def enabled(level: Level) -> bool:
    """Whether a line at ``level`` would be forwarded."""
    return level >= _max_level


def log(level: Level, message: str, *args: object) -> None:
    """Writes one line at ``level``; ``message % args`` if there are ``args``,
    formatted only when the level is enabled."""
    if level >= _max_level:
        if not args:
            _host.log(Level(level), str(message))
            return
        # As in the standard library's logging: one mapping argument feeds
        # %(name)s placeholders.
        if len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
            _host.log(Level(level), message % args[0])
        else:
            _host.log(Level(level), message % args)


def trace(message: str, *args: object) -> None:
    """Logs a line at :attr:`Level.TRACE`."""
    log(Level.TRACE, message, *args)


def debug(message: str, *args: object) -> None:
    """Logs a line at :attr:`Level.DEBUG`."""
    log(Level.DEBUG, message, *args)


def info(message: str, *args: object) -> None:
    """Logs a line at :attr:`Level.INFO`."""
    log(Level.INFO, message, *args)


def warn(message: str, *args: object) -> None:
    """Logs a line at :attr:`Level.WARN`."""
    log(Level.WARN, message, *args)


def error(message: str, *args: object) -> None:
    """Logs a line at :attr:`Level.ERROR`."""
    log(Level.ERROR, message, *args)
