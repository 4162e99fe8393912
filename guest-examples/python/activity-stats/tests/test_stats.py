"""ActivityStats against the Rust example's expectations (same bytes)."""

import json
import unittest

from ingesta import Permanent, testing
from ingesta.log import Level
from ingesta.testing import Emitted, TestBatch

from event import Event
from stats import ActivityStats, price_cents


def event(user: int, action: str, product: int, name: str, price: float) -> str:
    return json.dumps({"user_id": user, "action": action, "product_id": product,
                       "product_name": name, "price": price, "ts": 1_732_460_000_000},
                      separators=(",", ":"))


def values(out: list[Emitted], topic: str) -> list[str]:
    return [e.value_str() or "" for e in out if e.topic == topic]


def shop_batch() -> TestBatch:
    return (
        TestBatch("user-activity", 3).at_offset(100)
        .record("u1", event(123, "view", 456, "Trekking T-shirt", 19.9))
        .record("u1", event(123, "add_to_cart", 456, "Trekking T-shirt", 19.9))
        .record("u2", event(7, "view", 12, "Tent", 899.0))
        .record("u1", event(123, "add_to_cart", 456, "Trekking T-shirt", 19.9))
        .record("u2", event(7, "purchase", 12, "Tent", 899.0))
        .record("u1", event(123, "purchase", 456, "Trekking T-shirt", 19.9))
        .record("u3", event(9, "click", 12, "Tent", 899.0))
        .record("u3", event(9, "purchase", 99, "Gift card", 500.0))
    )


class ActivityStatsTest(unittest.TestCase):
    def setUp(self) -> None:
        testing.reset()

    def test_emits_stats_per_product_and_alerts(self) -> None:
        out = testing.run(ActivityStats(), shop_batch())
        stats = [e for e in out if e.topic == "user-activity-stats"]
        self.assertEqual([e.key_str() for e in stats], ["12", "99", "456"], "ascending product_id")
        self.assertEqual(
            values(out, "user-activity-stats")[2],
            '{"product_id":456,"product_name":"Trekking T-shirt","views":1,"clicks":0,"add_to_cart":2,"purchases":1,"revenue":19.9,"source":{"topic":"user-activity","partition":3,"first_offset":100,"last_offset":107}}',
        )
        self.assertEqual(
            values(out, "user-activity-stats")[0],
            '{"product_id":12,"product_name":"Tent","views":1,"clicks":1,"add_to_cart":0,"purchases":1,"revenue":899.0,"source":{"topic":"user-activity","partition":3,"first_offset":100,"last_offset":107}}',
        )
        # 500.0 is not strictly above the default threshold.
        self.assertEqual(
            values(out, "user-activity-alerts"),
            ['{"kind":"large_purchase","user_id":7,"product_id":12,"product_name":"Tent","price":899.0,"threshold":500.0,"source":{"topic":"user-activity","partition":3,"offset":104}}'],
        )
        alert = next(e for e in out if e.topic == "user-activity-alerts")
        self.assertEqual(alert.key_str(), "7")

    def test_honours_config(self) -> None:
        testing.set_config({"stats_topic": "s", "alerts_topic": "a", "alert_purchase_over": "10"})
        out = testing.run(ActivityStats(), shop_batch())
        self.assertEqual(len(values(out, "s")), 3)
        alerts = values(out, "a")
        self.assertEqual(len(alerts), 3, "Tent, T-shirt and the gift card exceed 10")
        self.assertIn('"price":19.9,"threshold":10.0', alerts[1])

    def test_bad_threshold_is_a_permanent_config_error(self) -> None:
        testing.set_config({"alert_purchase_over": "lots"})
        with self.assertRaises(Permanent) as ctx:
            testing.run(ActivityStats(), shop_batch())
        self.assertEqual(
            ctx.exception.message,
            'config key alert_purchase_over has invalid value "lots": invalid float literal',
        )
        testing.set_config({"alert_purchase_over": "inf"})
        with self.assertRaises(Permanent) as ctx:
            testing.run(ActivityStats(), shop_batch())
        self.assertEqual(ctx.exception.message,
                         "config key alert_purchase_over must be a finite number")

    def test_one_bad_event_fails_the_batch_and_emits_nothing(self) -> None:
        batch = shop_batch().record("u4", event(1, "refund", 5, "Socks", 3.0))
        with self.assertRaises(Permanent) as ctx:
            testing.run(ActivityStats(), batch)
        self.assertEqual(ctx.exception.record_index, 8)
        self.assertEqual(
            ctx.exception.message,
            'field action has unknown value "refund", expected view, click, add_to_cart or purchase (topic user-activity, partition 3, offset 108)',
        )

    def test_revenue_is_summed_in_cents(self) -> None:
        batch = TestBatch("user-activity", 0)
        for _ in range(10):
            batch.record(None, event(1, "purchase", 1, "Pin", 0.1))
        out = testing.run(ActivityStats(), batch)
        # Ten f64 0.1s sum to 0.9999999999999999; cents keep it exact.
        self.assertEqual(out[0].value_json()["revenue"], 1.0)
        self.assertIn(b'"revenue":1.0,', out[0].value or b"")

    def test_cents_round_half_away_from_zero_like_rust(self) -> None:
        self.assertEqual(price_cents(0.125), 13)  # 12.5 -> 13 (Python's round() gives 12)
        self.assertEqual(price_cents(1000.005), 100001)  # 100000.5 (round() gives 100000)
        self.assertEqual(price_cents(-0.125), -13)
        self.assertEqual(price_cents(1e300), 2**63 - 1, "saturates like `as i64`")

    def test_keeps_running_totals_and_logs_once_per_batch(self) -> None:
        handler = ActivityStats()
        testing.run(handler, shop_batch())
        testing.run(handler, TestBatch("user-activity", 3).at_offset(108).record(
            "u1", event(123, "purchase", 456, "Trekking T-shirt", 19.9)))
        tshirt = handler.totals[456]
        self.assertEqual((tshirt.add_to_cart, tshirt.purchases, tshirt.revenue()), (2, 2, 39.8))
        logs = testing.take_logs()
        self.assertEqual(len(logs), 2)
        self.assertEqual(
            logs[0],
            (Level.DEBUG, "user-activity/3 offsets 100..=107: 8 events, 3 products, 1 alerts; "
                          "3 products seen by this instance"),
        )

    def test_latest_product_name_wins_within_a_batch(self) -> None:
        batch = (TestBatch("user-activity", 0)
                 .record(None, event(1, "view", 1, "Old name", 1.0))
                 .record(None, event(1, "view", 1, "New name", 1.0)))
        out = testing.run(ActivityStats(), batch)
        self.assertEqual(len(out), 1)
        self.assertEqual(out[0].value_json()["product_name"], "New name")


GOOD = '{"user_id":123,"action":"add_to_cart","product_id":456,"product_name":"Trekking T-shirt","price":19.9,"ts":1732460000000}'


def parse(value: str) -> str | None:
    record = TestBatch("user-activity", 3).at_offset(120).record(None, value).as_batch()[0]
    try:
        Event.parse(record)
    except Permanent as e:
        assert e.record_index == 0
        suffix = " (topic user-activity, partition 3, offset 120)"
        assert e.message.endswith(suffix), e.message
        return e.message[: -len(suffix)]
    return None


class EventTest(unittest.TestCase):
    def test_parses_a_good_event(self) -> None:
        record = TestBatch("user-activity", 3).record(None, GOOD).as_batch()[0]
        e = Event.parse(record)
        self.assertEqual((e.user_id, e.action, e.product_id, e.product_name, e.price),
                         (123, "add_to_cart", 456, "Trekking T-shirt", 19.9))

    def test_tolerates_extra_fields_and_escapes(self) -> None:
        text = GOOD.replace("Trekking T-shirt", "Caf\\u00e9 mug").replace("}", ',"utm":"x"}')
        self.assertIsNone(parse(text))

    def test_explains_bad_events(self) -> None:
        cases = [
            ("[1,2]", "event must be a JSON object, got [1,2]"),
            (GOOD.replace('"price":19.9,', ""), "missing field price"),
            (GOOD.replace("19.9", '"cheap"'), 'field price must be a number, got "cheap"'),
            (GOOD.replace("123", "-1"), "field user_id must be a non-negative integer, got -1"),
            (GOOD.replace("123", "true"), "field user_id must be a non-negative integer, got true"),
            (GOOD.replace("123", "1.0"), "field user_id must be a non-negative integer, got 1.0"),
            (GOOD.replace("456", "null"), "field product_id must be a non-negative integer, got null"),
            (GOOD.replace("add_to_cart", "wishlist"),
             'field action has unknown value "wishlist", expected view, click, add_to_cart or purchase'),
            (GOOD.replace("1732460000000", '"yesterday"'),
             'field ts must be an integer (milliseconds since the epoch), got "yesterday"'),
            (GOOD.replace("19.9", "-19.9"), "field price must not be negative, got -19.9"),
            (GOOD.replace("19.9", "-19"), "field price must not be negative, got -19"),
            (GOOD.replace("123", '{"b":1,"a":2}'),
             'field user_id must be a non-negative integer, got {"a":2,"b":1}'),
            (GOOD.replace("}", ',"price":1}'), "invalid event: duplicate field `price`"),
        ]
        for text, expected in cases:
            self.assertEqual(parse(text), expected, text)
        self.assertTrue((parse("{not json") or "").startswith("value is not valid JSON: "))

    def test_null_value_is_explained(self) -> None:
        record = TestBatch("user-activity", 0).record("k", None).as_batch()[0]
        with self.assertRaises(Permanent) as ctx:
            Event.parse(record)
        self.assertTrue(ctx.exception.message.startswith("value is null, expected a JSON activity event"))

    def test_long_values_are_shortened(self) -> None:
        message = parse(GOOD.replace("19.9", '"' + "x" * 100 + '"'))
        self.assertEqual(message, 'field price must be a number, got "' + "x" * 39 + "...")


if __name__ == "__main__":
    unittest.main()
