"""The deployment's configuration map: the only "environment" a handler has.

The whole map is fetched from the host once, on first use, and kept for the
life of the instance (configuration cannot change under a running
instance). Read it at call time (in ``on_record``, ``on_batch``,
``on_request``...) or in ``__init__`` (which runs on the first call),
never at import time: ``ingesta build`` runs a module's top-level code
while building the component, where there is no deployment and so no
configuration, and a lookup there raises :class:`ingesta.Permanent`
(failing the build)::

    from ingesta import config

    topic = config.get_or("output_topic", "enriched")
    threshold = config.parse_or("alert_over", 500.0)
    target = config.require("output_topic")

Values that do not parse, and required keys that are missing, raise
:class:`ingesta.Permanent` errors naming the key: no retry can fix a
deployment's configuration.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from typing import TypeVar

from . import _host
from .errors import Permanent

__all__ = ["get", "get_or", "require", "parse", "parse_or", "entries"]

T = TypeVar("T")

_entries: list[tuple[str, str]] | None = None
_keys: list[str] = []


def _load() -> list[tuple[str, str]]:
    global _entries, _keys
    if _entries is None:
        # The host sends them sorted; sorting again is cheap insurance for
        # the binary search.
        _entries = sorted(_host.config_entries(), key=lambda kv: kv[0])
        _keys = [k for k, _ in _entries]
    return _entries


def reset_cache() -> None:
    """Forgets the cached map so the next lookup asks the host again (for
    :func:`ingesta.testing.set_config`)."""
    global _entries, _keys
    _entries = None
    _keys = []


def get(key: str) -> str | None:
    """The value for ``key``, or ``None`` if the deployment does not set it."""
    entries = _load()
    i = bisect.bisect_left(_keys, key)
    if i < len(_keys) and _keys[i] == key:
        return entries[i][1]
    return None


def get_or(key: str, default: str) -> str:
    """The value for ``key``, or ``default`` if the deployment does not set it."""
    value = get(key)
    return default if value is None else value


def require(key: str) -> str:
    """The value for ``key``; a permanent error ``config key KEY is not set``
    if the deployment does not set it."""
    value = get(key)
    if value is None:
        raise Permanent(f"config key {key} is not set")
    return value


def parse(key: str, kind: Callable[[str], T]) -> T | None:
    """Parses the value for ``key`` with ``kind``; ``None`` if it is not set.

    ``kind`` is ``int``, ``float`` or ``bool`` (parsed with Rust's rules, so
    a value means the same to a Python and a Rust module: ``int`` takes an
    optional sign and decimal digits, ``float`` also ``1e3``, ``inf`` and
    ``nan``, ``bool`` exactly ``true`` or ``false``), or any callable taking
    the text. A value that does not parse is a permanent error
    ``config key KEY has invalid value "RAW": REASON``.
    """
    raw = get(key)
    if raw is None:
        return None
    parser = _RUST_PARSERS.get(kind, kind)  # type: ignore[call-overload]
    try:
        return parser(raw)  # type: ignore[no-any-return]
    except (ValueError, TypeError, ArithmeticError) as e:
        raise Permanent(
            f"config key {key} has invalid value {_debug_str(raw)}: {e}"
        ) from None


def parse_or(key: str, default: T, kind: Callable[[str], T] | None = None) -> T:
    """Parses the value for ``key`` (see :func:`parse`), or returns
    ``default`` if the key is not set. ``kind`` defaults to the type of
    ``default``, so ``parse_or("limit", 500.0)`` parses a ``float``."""
    value = parse(key, kind if kind is not None else type(default))
    return default if value is None else value


def entries() -> list[tuple[str, str]]:
    """Every key and value, sorted by key."""
    return list(_load())


_INT = re.compile(r"[+-]?[0-9]+\Z")
_FLOAT = re.compile(
    r"[+-]?(?:inf|infinity|nan|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\Z",
    re.IGNORECASE,
)


def _rust_int(text: str) -> int:
    if not text:
        raise ValueError("cannot parse integer from empty string")
    if not _INT.match(text):
        raise ValueError("invalid digit found in string")
    return int(text)


def _rust_float(text: str) -> float:
    if not text:
        raise ValueError("cannot parse float from empty string")
    if not _FLOAT.match(text):
        raise ValueError("invalid float literal")
    return float(text)


def _rust_bool(text: str) -> bool:
    if text == "true":
        return True
    if text == "false":
        return False
    raise ValueError("provided string was not `true` or `false`")


_RUST_PARSERS: dict[object, Callable[[str], object]] = {
    int: _rust_int,
    float: _rust_float,
    bool: _rust_bool,
}


def _debug_str(text: str) -> str:
    """``text`` quoted as Rust's ``{:?}`` writes a string."""
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\0":
            out.append("\\0")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
