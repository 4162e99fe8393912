"""The shop scenario: turns ``user-activity`` events into per-product
activity stats and large-purchase alerts (a port of the Rust example, with
byte-identical output).

Each batch is validated as a whole first: one malformed event fails the
batch with a permanent error blaming that record, and nothing of the batch
is emitted. A good batch then yields

* one stats record per product touched, in ascending ``product_id`` order
  and events without one (the unknown product) last: the batch's
  increments, so summing a product's stats records gives its totals, and
  ``source`` identifies the input window so a reader can recognise a
  redelivered batch;
* one alert per purchase priced strictly above ``alert_purchase_over``.

Events in the shapes of the shop tutorial our users come from (other action
names, no price, no timestamp, no product) are counted, not refused; only
what cannot be read fails the batch.

See README.md for config keys and exact output formats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import ingesta
from ingesta import Batch, Permanent, config

from event import OTHER, Event

UNKNOWN_KEY, UNKNOWN_NAME = "unknown", "unknown product"
"""The key and name of the unknown product: events without a ``product_id``."""

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Settings:
    """Deployment settings, read from config on the first batch."""

    stats_topic: str
    alerts_topic: str
    alert_purchase_over: float

    @staticmethod
    def load() -> Settings:
        """Reads and checks the config keys (permanent errors name the key)."""
        alert_purchase_over = config.parse_or("alert_purchase_over", 500.0)
        if not math.isfinite(alert_purchase_over):
            raise Permanent("config key alert_purchase_over must be a finite number")
        return Settings(
            stats_topic=config.get_or("stats_topic", "user-activity-stats"),
            alerts_topic=config.get_or("alerts_topic", "user-activity-alerts"),
            alert_purchase_over=alert_purchase_over,
        )


def _saturate(n: int) -> int:
    return max(_I64_MIN, min(_I64_MAX, n))


def price_cents(price: float) -> int:
    """``(price * 100.0).round() as i64`` in Rust: rounded half away from
    zero (not to even), saturating at the ``i64`` bounds."""
    x = price * 100.0
    if math.isnan(x):
        return 0
    if math.isinf(x):
        return _I64_MAX if x > 0 else _I64_MIN
    whole = math.trunc(x)
    if abs(x - whole) >= 0.5:
        whole += 1 if x > 0 else -1
    return _saturate(whole)


@dataclass
class Counts:
    """Counts per action plus revenue, for one product."""

    views: int = 0
    clicks: int = 0
    add_to_cart: int = 0
    purchases: int = 0
    other_actions: int = 0
    revenue_cents: int = 0
    """Whole cents, so sums are exact (each price is rounded to cents)."""

    def record(self, event: Event) -> None:
        """Counts one event."""
        if event.action == "view":
            self.views += 1
        elif event.action == "click":
            self.clicks += 1
        elif event.action == "add_to_cart":
            self.add_to_cart += 1
        elif event.action == OTHER:
            self.other_actions += 1
        else:
            self.purchases += 1
            if event.price is not None:  # a purchase without a price adds nothing
                self.revenue_cents = _saturate(self.revenue_cents + price_cents(event.price))

    def add(self, other: Counts) -> None:
        """Adds ``other``'s counts to these."""
        self.views += other.views
        self.clicks += other.clicks
        self.add_to_cart += other.add_to_cart
        self.purchases += other.purchases
        self.other_actions += other.other_actions
        self.revenue_cents = _saturate(self.revenue_cents + other.revenue_cents)

    def revenue(self) -> float:
        """The revenue in currency units (``revenue_cents as f64 / 100.0``)."""
        return float(self.revenue_cents) / 100.0


def product_name(product_id: int | None, given: str | None) -> str:
    """The name to show for a product given ``given`` (an event's
    ``product_name``): the unknown product groups many products, so it never
    takes one of their names; a known one without a name shows its id."""
    if product_id is None:
        return UNKNOWN_NAME
    return str(product_id) if given is None else given


def _product_order(product_id: int | None) -> tuple[bool, int]:
    # Ascending ids, then the unknown product.
    return (product_id is None, product_id or 0)


class ActivityStats(ingesta.Handler):
    """Per-batch product stats and large-purchase alerts, plus running
    per-product totals for this instance (an in-memory view only: lost on
    recycle, and redelivered batches count twice)."""

    def __init__(self) -> None:
        self.settings: Settings | None = None
        self.totals: dict[int | None, Counts] = {}
        """Keyed by ``product_id``; ``None`` is the unknown product."""

    def on_batch(self, batch: Batch) -> None:
        """Validates the whole batch, then emits stats and alerts."""
        if self.settings is None:
            self.settings = Settings.load()
        settings = self.settings

        # Validate and aggregate everything before emitting anything.
        events = [(Event.parse(record), record.offset) for record in batch]
        names: dict[int | None, str] = {}
        products: dict[int | None, Counts] = {}
        alerts: list[tuple[Event, int]] = []
        for event, offset in events:
            if event.product_name is not None:
                names[event.product_id] = event.product_name  # the last given name wins
            products.setdefault(event.product_id, Counts()).record(event)
            if (event.action == "purchase" and event.price is not None
                    and event.price > settings.alert_purchase_over):
                alerts.append((event, offset))

        first_offset, last_offset = batch.first_offset, batch.last_offset
        if first_offset is None or last_offset is None:
            return
        for product_id in sorted(products, key=_product_order):
            c = products[product_id]
            stats = {
                "product_id": product_id,
                "product_name": product_name(product_id, names.get(product_id)),
                "views": c.views,
                "clicks": c.clicks,
                "add_to_cart": c.add_to_cart,
                "purchases": c.purchases,
                "other_actions": c.other_actions,
                "revenue": c.revenue(),
                "source": {
                    "topic": batch.topic,
                    "partition": batch.partition,
                    "first_offset": first_offset,
                    "last_offset": last_offset,
                },
            }
            key = UNKNOWN_KEY if product_id is None else str(product_id)
            ingesta.emit_json(settings.stats_topic, key, stats)
        for event, offset in alerts:
            alert = {
                "kind": "large_purchase",
                "event_id": event.event_id,  # int or str as given; the SDK escapes as serde_json
                "user_id": event.user_id,
                "product_id": event.product_id,
                "product_name": product_name(event.product_id, event.product_name),
                "price": event.price,
                "threshold": settings.alert_purchase_over,
                "ts": event.ts,
                "source": {"topic": batch.topic, "partition": batch.partition, "offset": offset},
            }
            ingesta.emit_json(settings.alerts_topic, str(event.user_id), alert)

        for product_id, counts in products.items():
            self.totals.setdefault(product_id, Counts()).add(counts)
        ingesta.debug(
            "%s/%d offsets %d..=%d: %d events, %d products, %d alerts; "
            "%d products seen by this instance",
            batch.topic, batch.partition, first_offset, last_offset,
            len(events), len(products), len(alerts), len(self.totals),
        )
