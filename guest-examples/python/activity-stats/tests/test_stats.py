"""ActivityStats against the Rust example's expectations (same bytes)."""

import json
import unittest

from ingesta import Permanent, testing
from ingesta.log import Level
from ingesta.testing import Emitted, TestBatch, TestRecord

from event import OTHER, Event
from stats import ActivityStats, price_cents

SOURCE = '"source":{"topic":"user-activity","partition":3,"first_offset":100,"last_offset":107}'
RECORD_TS = 1_700_000_000_000
TUTORIAL = (
    '{"user_id": 123, "action": "added_to_cart", "product_id": 456, "product_name": "Camiseta de Trekking"}',
    '{"event_id": 123, "action": "product_added_to_cart", "user_id": 456}',
)


def event(user: int, action: str, product: int, name: str, price: float) -> str:
    return json.dumps({"user_id": user, "action": action, "product_id": product,
                       "product_name": name, "price": price, "ts": 1_732_460_000_000},
                      separators=(",", ":"))


def stamped(value: str, ts: int | None = RECORD_TS) -> TestRecord:
    """A record whose broker timestamp is ``ts`` (``None``: it has none)."""
    record = TestRecord(None, value)
    return record if ts is None else record.timestamp(ts)


def one(value: str, ts: int | None = RECORD_TS) -> list[Emitted]:
    """What a batch of one record holding ``value`` emits."""
    return testing.run(ActivityStats(), TestBatch("user-activity", 3).at_offset(120).push(stamped(value, ts)))


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
            '{"product_id":456,"product_name":"Trekking T-shirt","views":1,"clicks":0,"add_to_cart":2,"purchases":1,"other_actions":0,"revenue":19.9,' + SOURCE + "}",
        )
        self.assertEqual(
            values(out, "user-activity-stats")[0],
            '{"product_id":12,"product_name":"Tent","views":1,"clicks":1,"add_to_cart":0,"purchases":1,"other_actions":0,"revenue":899.0,' + SOURCE + "}",
        )
        # 500.0 is not strictly above the default threshold.
        self.assertEqual(
            values(out, "user-activity-alerts"),
            ['{"kind":"large_purchase","event_id":null,"user_id":7,"product_id":12,"product_name":"Tent","price":899.0,"threshold":500.0,"ts":1732460000000,"source":{"topic":"user-activity","partition":3,"offset":104}}'],
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
        batch = shop_batch().record("u4", event(1, "view", 5, "Socks", 3.0).replace('"Socks"', "7"))
        with self.assertRaises(Permanent) as ctx:
            testing.run(ActivityStats(), batch)
        self.assertEqual(ctx.exception.record_index, 8)
        self.assertEqual(
            ctx.exception.message,
            "field product_name must be a string, got 7 (topic user-activity, partition 3, offset 108)",
        )

    def test_counts_the_tutorials_events(self) -> None:
        batch = TestBatch("user-activity", 3).at_offset(100)
        for value in TUTORIAL:
            batch.push(stamped(value))
        out = testing.run(ActivityStats(), batch)
        self.assertEqual([e.key_str() for e in out], ["456", "unknown"], "the unknown product last")
        window = '"source":{"topic":"user-activity","partition":3,"first_offset":100,"last_offset":101}}'
        self.assertEqual(values(out, "user-activity-stats"), [
            '{"product_id":456,"product_name":"Camiseta de Trekking","views":0,"clicks":0,"add_to_cart":1,"purchases":0,"other_actions":0,"revenue":0.0,' + window,
            '{"product_id":null,"product_name":"unknown product","views":0,"clicks":0,"add_to_cart":1,"purchases":0,"other_actions":0,"revenue":0.0,' + window,
        ])

    def test_unknown_actions_are_counted_not_refused(self) -> None:
        batch = (TestBatch("user-activity", 0)
                 .record(None, event(1, "refund", 5, "Socks", 3.0))
                 .record(None, event(1, "View", 5, "Socks", 3.0))  # case-sensitive
                 .record(None, event(1, "purchased", 5, "Socks", 3.0)))
        stats = testing.run(ActivityStats(), batch)[0].value_json()
        self.assertEqual((stats["other_actions"], stats["views"], stats["purchases"], stats["revenue"]),
                         (2, 0, 1, 3.0))

    def test_a_purchase_without_a_price_is_counted_without_revenue_or_alert(self) -> None:
        for bare in ('{"user_id":1,"action":"checkout","product_id":5}',
                     '{"user_id":1,"action":"checkout","product_id":5,"price":null}'):
            out = one(bare)
            self.assertEqual(len(out), 1, "no alert")
            self.assertEqual(
                out[0].value_str(),
                '{"product_id":5,"product_name":"5","views":0,"clicks":0,"add_to_cart":0,"purchases":1,"other_actions":0,"revenue":0.0,"source":{"topic":"user-activity","partition":3,"first_offset":120,"last_offset":120}}',
            )

    def test_alerts_carry_event_id_and_ts(self) -> None:
        source = '"source":{"topic":"user-activity","partition":3,"offset":120}}'
        cases = [
            # A string id, escaped as serde_json does; the record's timestamp.
            ('{"user_id":123,"action":"purchase","product_id":456,"product_name":"Trekking T-shirt","price":999,"event_id":"e-\\"81\\"\\u0001é"}',
             RECORD_TS,
             '{"kind":"large_purchase","event_id":"e-\\"81\\"\\u0001é","user_id":123,"product_id":456,"product_name":"Trekking T-shirt","price":999.0,"threshold":500.0,"ts":1700000000000,'),
            # An integer id; the event's own ts wins; no name: the id in decimal.
            ('{"user_id":123,"action":"order","product_id":456,"price":999.0,"ts":1732460000000,"event_id":-81}',
             RECORD_TS,
             '{"kind":"large_purchase","event_id":-81,"user_id":123,"product_id":456,"product_name":"456","price":999.0,"threshold":500.0,"ts":1732460000000,'),
            # No product: the unknown product, even with a name; no ts anywhere: null.
            ('{"user_id":7,"action":"purchased","product_name":"Tent","price":600.5,"event_id":null,"ts":null}',
             None,
             '{"kind":"large_purchase","event_id":null,"user_id":7,"product_id":null,"product_name":"unknown product","price":600.5,"threshold":500.0,"ts":null,'),
        ]
        for value, ts, alert in cases:
            out = one(value, ts)
            self.assertEqual(values(out, "user-activity-alerts"), [alert + source], value)
            self.assertEqual(out[-1].key_str(), str(json.loads(value)["user_id"]))

    def test_a_products_name_is_its_last_given_one_else_its_id(self) -> None:
        batch = (TestBatch("user-activity", 0)
                 .record(None, '{"user_id":1,"action":"view","product_id":1,"product_name":"Tent"}')
                 .record(None, '{"user_id":1,"action":"view","product_id":1,"product_name":null}')
                 .record(None, '{"user_id":1,"action":"view","product_id":2}')
                 .record(None, '{"user_id":1,"action":"view","product_name":"Mug"}'))
        out = testing.run(ActivityStats(), batch)
        self.assertEqual([(e.key_str(), e.value_json()["product_name"]) for e in out],
                         [("1", "Tent"), ("2", "2"), ("unknown", "unknown product")])

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
        testing.run(handler, TestBatch("user-activity", 3).at_offset(109).record(
            "u1", TUTORIAL[1]))
        self.assertEqual(handler.totals[None].add_to_cart, 1, "the unknown product has totals too")
        tshirt = handler.totals[456]
        self.assertEqual((tshirt.add_to_cart, tshirt.purchases, tshirt.revenue()), (2, 2, 39.8))
        logs = testing.take_logs()
        self.assertEqual(len(logs), 3)
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


def read(value: str, ts: int | None = RECORD_TS) -> Event | str:
    """The event in ``value``, or the message (without the record) it is refused with."""
    record = TestBatch("user-activity", 3).at_offset(120).push(stamped(value, ts)).as_batch()[0]
    try:
        return Event.parse(record)
    except Permanent as e:
        assert e.record_index == 0
        suffix = " (topic user-activity, partition 3, offset 120)"
        assert e.message.endswith(suffix), e.message
        return e.message[: -len(suffix)]


class EventTest(unittest.TestCase):
    def test_parses_a_good_event(self) -> None:
        self.assertEqual(read(GOOD), Event(123, "add_to_cart", 456, "Trekking T-shirt", 19.9,
                                           1_732_460_000_000, None))

    def test_reads_the_tutorials_events(self) -> None:
        self.assertEqual(read(TUTORIAL[0]),
                         Event(123, "add_to_cart", 456, "Camiseta de Trekking", None, RECORD_TS, None))
        self.assertEqual(read(TUTORIAL[1]), Event(456, "add_to_cart", None, None, None, RECORD_TS, 123))

    def test_every_action_name_counts_as_its_action(self) -> None:
        names = {
            "view": "view", "page_view": "view", "product_view": "view", "viewed": "view",
            "click": "click", "clicked": "click", "product_click": "click",
            "add_to_cart": "add_to_cart", "added_to_cart": "add_to_cart",
            "product_added_to_cart": "add_to_cart", "cart_add": "add_to_cart",
            "purchase": "purchase", "purchased": "purchase", "order": "purchase", "checkout": "purchase",
            "refund": OTHER, "View": OTHER, "add-to-cart": OTHER, "": OTHER,
        }
        for name, action in names.items():
            event = read(GOOD.replace('"add_to_cart"', json.dumps(name)))
            assert isinstance(event, Event), event
            self.assertEqual(event.action, action, name)

    def test_missing_and_null_optional_fields_are_absent(self) -> None:
        bare = '{"user_id":1,"action":"purchase"}'
        nulls = '{"user_id":1,"action":"purchase","product_id":null,"product_name":null,"price":null,"ts":null,"event_id":null}'
        for value in (bare, nulls):
            self.assertEqual(read(value), Event(1, "purchase", None, None, None, RECORD_TS, None), value)
        self.assertEqual(read(bare, ts=None), Event(1, "purchase", None, None, None, None, None),
                         "no ts and no record timestamp")
        for field in ("product_id", "product_name", "price", "ts"):
            without = json.loads(GOOD)
            del without[field]
            event = read(json.dumps(without))
            assert isinstance(event, Event), event
            self.assertEqual(getattr(event, field), RECORD_TS if field == "ts" else None, field)

    def test_event_ids_are_kept_as_given(self) -> None:
        for given in (123, -5, 2**63 - 1, "e-81", "", "Caf\u00e9 \"x\""):
            event = read(GOOD.replace("{", '{"event_id":' + json.dumps(given) + ",", 1))
            assert isinstance(event, Event), event
            self.assertEqual(event.event_id, given)

    def test_tolerates_extra_fields_and_escapes(self) -> None:
        text = GOOD.replace("Trekking T-shirt", "Caf\\u00e9 mug").replace("}", ',"utm":"x"}')
        self.assertIsInstance(read(text), Event)

    def test_explains_what_cannot_be_read(self) -> None:
        def with_id(v: str) -> str:
            return GOOD.replace("{", '{"event_id":' + v + ",", 1)

        cases = [
            ("[1,2]", "event must be a JSON object, got [1,2]"),
            ("null", "event must be a JSON object, got null"),
            ('{"action":"view"}', "missing field user_id"),
            ('{"user_id":1}', "missing field action"),
            ('{"user_id":null,"action":"view"}', "field user_id must be a non-negative integer, got null"),
            ('{"user_id":1,"action":null}', "field action must be a string, got null"),
            (GOOD.replace("123", "-1"), "field user_id must be a non-negative integer, got -1"),
            (GOOD.replace("123", "true"), "field user_id must be a non-negative integer, got true"),
            (GOOD.replace("123", "1.0"), "field user_id must be a non-negative integer, got 1.0"),
            (GOOD.replace("123", str(2**64)), "field user_id must be a non-negative integer, got 1.8446744073709552e+19"),
            (GOOD.replace("123", '{"b":1,"a":2}'),
             'field user_id must be a non-negative integer, got {"a":2,"b":1}'),
            (GOOD.replace('"add_to_cart"', "5"), "field action must be a string, got 5"),
            (GOOD.replace("456", '"abc"'), 'field product_id must be a non-negative integer, got "abc"'),
            (GOOD.replace('"Trekking T-shirt"', "7"), "field product_name must be a string, got 7"),
            (GOOD.replace("19.9", '"cheap"'), 'field price must be a number, got "cheap"'),
            (GOOD.replace("19.9", "true"), "field price must be a number, got true"),
            (GOOD.replace("19.9", "-19.9"), "field price must not be negative, got -19.9"),
            (GOOD.replace("19.9", "-19"), "field price must not be negative, got -19"),
            (GOOD.replace("1732460000000", '"yesterday"'),
             'field ts must be an integer (milliseconds since the epoch), got "yesterday"'),
            (GOOD.replace("1732460000000", str(2**63)),
             "field ts must be an integer (milliseconds since the epoch), got 9223372036854775808"),
            (with_id("[1]"), "field event_id must be an integer or a string, got [1]"),
            (with_id("1.0"), "field event_id must be an integer or a string, got 1.0"),
            (with_id("true"), "field event_id must be an integer or a string, got true"),
            (with_id(str(2**63)), "field event_id must be an integer or a string, got 9223372036854775808"),
            (with_id('{"id":"' + "x" * 50 + '"}'),
             'field event_id must be an integer or a string, got {"id":"' + "x" * 33 + "..."),
            # The first bad field in schema order is named; a negative price
            # comes before a bad ts.
            (GOOD.replace("456", '"abc"').replace('"Trekking T-shirt"', "7"),
             'field product_id must be a non-negative integer, got "abc"'),
            (GOOD.replace("19.9", "-1.0").replace("1732460000000", "true"),
             "field price must not be negative, got -1"),
            (with_id("[1]").replace("1732460000000", "true"),
             "field ts must be an integer (milliseconds since the epoch), got true"),
            (GOOD.replace("}", ',"price":1}'), "invalid event: duplicate field `price`"),
            (GOOD.replace("}", ',"event_id":1,"event_id":2}'), "invalid event: duplicate field `event_id`"),
        ]
        for text, expected in cases:
            self.assertEqual(read(text), expected, text)
        self.assertTrue(str(read("{not json")).startswith("value is not valid JSON: "))

    def test_null_value_is_explained(self) -> None:
        record = TestBatch("user-activity", 0).record("k", None).as_batch()[0]
        with self.assertRaises(Permanent) as ctx:
            Event.parse(record)
        self.assertTrue(ctx.exception.message.startswith("value is null, expected a JSON activity event"))

    def test_long_values_are_shortened(self) -> None:
        message = read(GOOD.replace("19.9", '"' + "x" * 100 + '"'))
        self.assertEqual(message, 'field price must be a number, got "' + "x" * 39 + "...")


if __name__ == "__main__":
    unittest.main()
