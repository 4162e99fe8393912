"""The ``user-activity`` event schema: parsing and validation with error
messages that name the offending field, worded as the Rust example's.
Lenient where the shop tutorial's producers differ from ours (action names,
optional fields), strict about what cannot be read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ingesta
from ingesta import Permanent, Record

ACTIONS = ("view", "click", "add_to_cart", "purchase")
"""The actions counted apart, in schema order; any other is ``OTHER``."""
OTHER = "other"
_ALIASES = {
    name: action
    for action, names in {
        "view": ("view", "page_view", "product_view", "viewed"),
        "click": ("click", "clicked", "product_click"),
        "add_to_cart": ("add_to_cart", "added_to_cart", "product_added_to_cart", "cart_add"),
        "purchase": ("purchase", "purchased", "order", "checkout"),
    }.items()
    for name in names
}
"""Our action names and the tutorial's, matched exactly (case-sensitive)."""
_U64_MAX = 2**64 - 1
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Event:
    """One shop event, read. Unknown extra fields are ignored, so producers
    can add fields without breaking this handler."""

    user_id: int
    action: str
    """One of ``ACTIONS``, or ``OTHER``."""
    product_id: int | None
    """``None``: the unknown product."""
    product_name: str | None
    price: float | None
    """``None``: counted as a purchase, but no revenue and no alert."""
    ts: int | None
    """The event's ``ts``, else the record's timestamp (alerts carry it)."""
    event_id: int | str | None
    """As given, so alerts can carry it back to the producer."""

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
        # Missing and null are alike for the optional fields (serde's Option).
        price = value.get("price")
        ts = value.get("ts")
        return Event(
            user_id=value["user_id"],
            action=_ALIASES.get(value["action"], OTHER),
            product_id=value.get("product_id"),
            product_name=value.get("product_name"),
            price=None if price is None else float(price),
            ts=record.timestamp if ts is None else ts,
            event_id=value.get("event_id"),
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
    # type() rather than isinstance(): JSON true is not an integer.
    return type(v) is int and _I64_MIN <= v <= _I64_MAX


def _is_number(v: Any) -> bool:
    return type(v) in (int, float)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


# (field, required, valid, what it must be), in the order they are checked:
# the first bad one is named, as in the Rust module.
_CHECKS = (
    ("user_id", True, _is_u64, "a non-negative integer"),
    ("action", True, _is_str, "a string"),
    ("product_id", False, _is_u64, "a non-negative integer"),
    ("product_name", False, _is_str, "a string"),
    ("price", False, _is_number, "a number"),
    ("ts", False, _is_i64, "an integer (milliseconds since the epoch)"),
    ("event_id", False, lambda v: _is_i64(v) or _is_str(v), "an integer or a string"),
)
_FIELDS = frozenset(name for name, *_ in _CHECKS)


def _diagnose(value: Any) -> str | None:
    """Why ``value`` is not a valid event, naming the first bad field in
    schema order; ``None`` if it is one."""
    if not isinstance(value, dict):
        return f"event must be a JSON object, got {excerpt(value)}"
    for name, required, is_valid, expected in _CHECKS:
        if name not in value and required:
            return f"missing field {name}"
        v = value.get(name)
        if v is None and not required:
            continue
        if not is_valid(v):
            return f"field {name} must be {expected}, got {excerpt(v)}"
        # Named in its place, before a bad ts or event_id.
        if name == "price" and v < 0:
            return f"field price must not be negative, got {rust_display_float(float(v))}"
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


__all__ = ["ACTIONS", "OTHER", "Event", "Permanent", "excerpt", "rust_display_float"]
