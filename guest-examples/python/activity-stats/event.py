"""The ``user-activity`` event schema: parsing and validation with error
messages that name the offending field, worded as the Rust example's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ingesta
from ingesta import Permanent, Record

ACTIONS = ("view", "click", "add_to_cart", "purchase")
"""Every action's name as it is written in JSON, in schema order."""
_EXPECTED_ACTIONS = "view, click, add_to_cart or purchase"
_FIELDS = ("user_id", "action", "product_id", "product_name", "price", "ts")
_U64_MAX = 2**64 - 1
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Event:
    """One shop event. Unknown extra fields are ignored, so producers can add
    fields without breaking this handler."""

    user_id: int
    action: str
    product_id: int
    product_name: str
    price: float
    ts: int
    """Milliseconds since the Unix epoch; required by the schema, unused here."""

    @staticmethod
    def parse(record: Record) -> Event:
        """Parses and validates ``record``'s value. Any problem is a permanent
        error that names the field and the record."""
        raw = record.value
        if raw is None:
            raise record.error("value is null, expected a JSON activity event")
        try:
            value = ingesta.from_json(raw, object_pairs_hook=_Object)
        except ValueError as e:
            raise record.error(f"value is not valid JSON: {e}") from None
        problem = _diagnose(value)
        if problem is not None:
            raise record.error(problem)
        price = float(value["price"])
        if price < 0.0:
            raise record.error(f"field price must not be negative, got {rust_display_float(price)}")
        return Event(
            user_id=value["user_id"],
            action=value["action"],
            product_id=value["product_id"],
            product_name=value["product_name"],
            price=price,
            ts=value["ts"],
        )


class _Object(dict):  # type: ignore[type-arg]
    """A JSON object that remembers which schema fields it saw twice (a typed
    ``serde`` parse refuses those; other duplicates are ignored)."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.duplicate: str | None = None
        if len(self) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen and key in _FIELDS:
                    self.duplicate = key
                    break
                seen.add(key)


def _is_u64(v: Any) -> bool:
    return type(v) is int and 0 <= v <= _U64_MAX


def _is_i64(v: Any) -> bool:
    return type(v) is int and _I64_MIN <= v <= _I64_MAX


def _is_number(v: Any) -> bool:
    return type(v) in (int, float)


_CHECKS = (
    ("user_id", _is_u64, "a non-negative integer"),
    ("action", lambda v: isinstance(v, str), "a string"),
    ("product_id", _is_u64, "a non-negative integer"),
    ("product_name", lambda v: isinstance(v, str), "a string"),
    ("price", _is_number, "a number"),
    ("ts", _is_i64, "an integer (milliseconds since the epoch)"),
)


def _diagnose(value: Any) -> str | None:
    """Why ``value`` is not a valid event, naming the first bad field in
    schema order; ``None`` if it is one."""
    if not isinstance(value, dict):
        return f"event must be a JSON object, got {excerpt(value)}"
    for name, is_valid, expected in _CHECKS:
        if name not in value:
            return f"missing field {name}"
        if not is_valid(value[name]):
            return f"field {name} must be {expected}, got {excerpt(value[name])}"
    action = value["action"]
    if action not in ACTIONS:
        return f"field action has unknown value {rust_debug_str(action)}, expected {_EXPECTED_ACTIONS}"
    if isinstance(value, _Object) and value.duplicate is not None:
        return f"invalid event: duplicate field `{value.duplicate}`"
    return None


def _sorted(value: Any) -> Any:
    # serde_json::Value keeps object keys sorted (no preserve_order feature).
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def excerpt(value: Any) -> str:
    """``value`` as ``serde_json::Value`` writes it, cut to 40 characters, for
    error messages that quote what a producer sent."""
    text = ingesta.to_json_str(_sorted(value))
    return text[:40] + "..." if len(text) > 40 else text


def rust_debug_str(text: str) -> str:
    """``text`` quoted as Rust's ``{:?}`` writes a string."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\0":
            out.append("\\0")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{{{code:x}}}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def rust_display_float(x: float) -> str:
    """``x`` as Rust's ``{}`` writes an ``f64``: the shortest round-trip
    digits in plain decimal, without a ``.0`` for whole numbers."""
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    sign = "-" if str(x).startswith("-") else ""
    mantissa, _, exp = repr(abs(x)).partition("e")
    int_part, _, frac = mantissa.partition(".")
    frac = "" if frac == "0" else frac
    digits = int_part + frac
    point = len(int_part) + (int(exp) if exp else 0)  # digits before the decimal point
    if point <= 0:
        text = "0." + "0" * (-point) + digits.lstrip("0")
    elif point >= len(digits):
        text = digits + "0" * (point - len(digits))
    else:
        text = digits[:point] + "." + digits[point:]
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    text = text.lstrip("0") or "0"
    if text.startswith("."):
        text = "0" + text
    return sign + text


__all__ = ["ACTIONS", "Event", "Permanent", "excerpt", "rust_debug_str", "rust_display_float"]
