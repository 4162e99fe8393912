"""pii-router: validates shop events, redacts personal data from their text,
adds derived fields and routes them: clean events to ``clean_topic``,
invalid ones, untouched, to ``quarantine_topic`` with the reason in a
header. See README.md for the formats."""

from __future__ import annotations

import datetime
import math
from typing import Any

import ingesta
from ingesta import Record, config

from redact import Findings, redact

ACTIONS = ("view", "click", "add_to_cart", "purchase")
_U64_MAX = 2**64 - 1
_EPOCH = datetime.date(1970, 1, 1)


class Invalid(Exception):
    """Why an event goes to quarantine."""


def _u64(event: dict[str, Any], name: str) -> int:
    v = event.get(name)
    if type(v) is not int or not 0 <= v <= _U64_MAX:
        raise Invalid(f"field {name} must be a non-negative integer")
    return v


def validate(record: Record) -> dict[str, Any]:
    """The record's event, or :class:`Invalid` saying what is wrong with it."""
    if record.value is None:
        raise Invalid("value is null")
    try:
        event = ingesta.from_json(record.value)
    except ValueError as e:
        raise Invalid(f"value is not valid JSON: {e}") from None
    if not isinstance(event, dict):
        raise Invalid("event must be a JSON object")
    for name in ("user_id", "action", "ts"):
        if name not in event:
            raise Invalid(f"missing field {name}")
    _u64(event, "user_id")
    if event["action"] not in ACTIONS:
        raise Invalid("field action must be one of " + ", ".join(ACTIONS))
    if type(event["ts"]) is not int or not 0 <= event["ts"] < 253402300800000:
        raise Invalid("field ts must be milliseconds since the epoch, before year 10000")
    if "product_id" in event:
        _u64(event, "product_id")
    price = event.get("price")
    if price is not None and (type(price) not in (int, float) or price < 0):
        raise Invalid("field price must be a non-negative number")
    return event


def cents(price: float) -> int:
    """``price`` in whole cents, rounded half away from zero."""
    x = float(price) * 100.0
    whole = math.trunc(x)
    return whole + (1 if x - whole >= 0.5 else 0)


class PiiRouter(ingesta.Handler):
    """Per record: quarantine if invalid, else redact, enrich and publish."""

    def __init__(self) -> None:
        self.clean_topic = ""
        self.quarantine_topic = ""
        self.keep: frozenset[str] = frozenset()
        self.loaded = False
        self.routed = {"clean": 0, "quarantine": 0, "redactions": 0}

    def _load(self) -> None:
        self.clean_topic = config.get_or("clean_topic", "shop-events-clean")
        self.quarantine_topic = config.get_or("quarantine_topic", "shop-events-quarantine")
        keep = config.get_or("keep_fields", "action")
        self.keep = frozenset(f.strip() for f in keep.split(",") if f.strip())
        if self.clean_topic == self.quarantine_topic:
            raise ingesta.Permanent("config keys clean_topic and quarantine_topic must differ")
        self.loaded = True

    def on_batch(self, batch: ingesta.Batch) -> None:
        """Routes every record, then logs one summary line."""
        if not self.loaded:
            self._load()
        super().on_batch(batch)
        ingesta.debug("%s/%d offsets %s..=%s: %s", batch.topic, batch.partition,
                      batch.first_offset, batch.last_offset, self.routed)

    def on_record(self, record: Record) -> None:
        """Routes one record."""
        try:
            event = validate(record)
        except Invalid as why:
            self.routed["quarantine"] += 1
            ingesta.Message.to(self.quarantine_topic).key(record.key).value(record.value) \
                .headers_from(record) \
                .header("quarantine-reason", str(why)) \
                .header("source-topic", record.topic) \
                .header("source-partition", str(record.partition)) \
                .header("source-offset", str(record.offset)) \
                .emit()
            return
        found = Findings()
        clean: dict[str, Any] = redact(event, found, self.keep)  # type: ignore[assignment]
        ts = clean["ts"]
        clean["day"] = (_EPOCH + datetime.timedelta(days=ts // 86_400_000)).isoformat()
        if isinstance(clean.get("price"), (int, float)):
            clean["amount_cents"] = cents(clean["price"])
        clean["pii_redacted"] = found.kinds
        self.routed["clean"] += 1
        self.routed["redactions"] += found.count
        ingesta.emit_json(
            self.clean_topic, str(clean["user_id"]), clean,
            headers=[*record.headers, ("pii-redactions", str(found.count))],
        )
