"""PiiRouter and the redaction rules."""

import json
import unittest

from ingesta import Permanent, testing
from ingesta.testing import TestBatch, TestRecord

from redact import Findings, luhn_ok, redact_text
from router import PiiRouter

GOOD = {"user_id": 42, "action": "purchase", "product_id": 456, "price": 19.9,
        "ts": 1732460000000, "comment": "Call me on +44 20 7946 0958 or mail jo.doe@example.com"}


def value(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


class RedactTest(unittest.TestCase):
    def check(self, text: str, expected: str, kinds: list[str]) -> None:
        found = Findings()
        self.assertEqual(redact_text(text, found), expected)
        self.assertEqual(found.kinds, kinds)

    def test_emails_cards_and_phones(self) -> None:
        self.check("mail jo.doe+x@mail.example.co.uk now", "mail [email] now", ["email"])
        self.check("card 4111 1111 1111 1111 exp 12/29", "card [card] exp 12/29", ["card"])
        self.check("card 4111-1111-1111-1111", "card [card]", ["card"])
        self.check("call (020) 7946-0958!", "call [phone]!", ["phone"])
        self.check("call +1 415 555 2671", "call [phone]", ["phone"])
        self.check("a@b.io, 5500005555555559", "[email], [card]", ["email", "card"])

    def test_leaves_ordinary_numbers_alone(self) -> None:
        self.check("order 1234567890123 shipped", "order [phone] shipped", ["phone"])  # not Luhn
        self.check("2 tents for 899.00 on 2024-11-24", "2 tents for 899.00 on 2024-11-24", [])
        self.check("size 42, qty 3", "size 42, qty 3", [])

    def test_luhn(self) -> None:
        self.assertTrue(luhn_ok("4111111111111111"))
        self.assertFalse(luhn_ok("4111111111111112"))


class RouterTest(unittest.TestCase):
    def setUp(self) -> None:
        testing.reset()

    def test_clean_events_are_redacted_enriched_and_keyed_by_user(self) -> None:
        batch = TestBatch("shop-events", 2).push(TestRecord("k", value(GOOD)).header("trace", "t1"))
        out = testing.run(PiiRouter(), batch)
        self.assertEqual(len(out), 1)
        e = out[0]
        self.assertEqual((e.topic, e.key_str()), ("shop-events-clean", "42"))
        self.assertEqual(e.headers, [("trace", b"t1"), ("pii-redactions", b"2")])
        self.assertEqual(
            e.value_str(),
            '{"user_id":42,"action":"purchase","product_id":456,"price":19.9,"ts":1732460000000,'
            '"comment":"Call me on [phone] or mail [email]","day":"2024-11-24",'
            '"amount_cents":1990,"pii_redacted":["email","phone"]}',
        )

    def test_nested_text_is_redacted_and_keep_fields_are_not(self) -> None:
        testing.set_config({"keep_fields": "action, support_email"})
        event = dict(GOOD, comment="none", support_email="help@shop.example",
                     shipping={"notes": ["ring 0612345678"], "zip": "1011 AB"})
        out = testing.run(PiiRouter(), TestBatch().record(None, value(event)))
        got = out[0].value_json()
        self.assertEqual(got["support_email"], "help@shop.example")
        self.assertEqual(got["shipping"], {"notes": ["ring [phone]"], "zip": "1011 AB"})
        self.assertEqual(got["pii_redacted"], ["phone"])
        self.assertEqual(out[0].headers, [("pii-redactions", b"1")])

    def test_invalid_events_go_to_quarantine_untouched_with_a_reason(self) -> None:
        cases = [
            (None, "value is null"),
            ("{oops", "value is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
            ("[1]", "event must be a JSON object"),
            (value({k: v for k, v in GOOD.items() if k != "ts"}), "missing field ts"),
            (value(dict(GOOD, user_id=-1)), "field user_id must be a non-negative integer"),
            (value(dict(GOOD, user_id=True)), "field user_id must be a non-negative integer"),
            (value(dict(GOOD, action="refund")),
             "field action must be one of view, click, add_to_cart, purchase"),
            (value(dict(GOOD, price="free")), "field price must be a non-negative number"),
        ]
        batch = TestBatch("shop-events", 1).at_offset(7)
        for v, _ in cases:
            batch.push(TestRecord("k", v).header("trace", "t"))
        batch.record("k", value(GOOD))
        out = testing.run(PiiRouter(), batch)
        quarantined = [e for e in out if e.topic == "shop-events-quarantine"]
        self.assertEqual(len(quarantined), len(cases))
        for e, (v, reason) in zip(quarantined, cases):
            self.assertEqual(e.value, None if v is None else v.encode())
            self.assertEqual(e.key, b"k")
            self.assertEqual(dict(e.headers)["quarantine-reason"], reason.encode())
            self.assertEqual(e.headers[0], ("trace", b"t"))
        self.assertEqual(dict(quarantined[0].headers)["source-offset"], b"7")
        self.assertEqual(dict(quarantined[0].headers)["source-partition"], b"1")
        self.assertEqual(out[-1].topic, "shop-events-clean", "order is kept")
        self.assertEqual(len(testing.take_logs()), 1, "one log line per batch")

    def test_topics_come_from_config(self) -> None:
        testing.set_config({"clean_topic": "c", "quarantine_topic": "q"})
        out = testing.run(PiiRouter(), TestBatch().record(None, "x").record(None, value(GOOD)))
        self.assertEqual([e.topic for e in out], ["q", "c"])
        testing.set_config({"clean_topic": "same", "quarantine_topic": "same"})
        with self.assertRaises(Permanent) as ctx:
            testing.run(PiiRouter(), TestBatch().record(None, "x"))
        self.assertEqual(ctx.exception.message,
                         "config keys clean_topic and quarantine_topic must differ")


if __name__ == "__main__":
    unittest.main()
