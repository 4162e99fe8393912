"""The echo fixture against its spec."""

import unittest

from ingesta import Permanent, Retryable, TimestampType, testing
from ingesta.log import Level
from ingesta.testing import TestBatch, TestRecord

from echo import Echo


class EchoTest(unittest.TestCase):
    def setUp(self) -> None:
        testing.reset()
        testing.set_config({"output_topic": "out"})

    def test_echoes_key_headers_and_json(self) -> None:
        batch = (
            TestBatch("in", 4).at_offset(9)
            .push(TestRecord("k1", "héllo").header("a", "1").header("n", None)
                  .timestamp(1732460000000, TimestampType.CREATE_TIME))
            .push(TestRecord(None, "x").timestamp(5, TimestampType.LOG_APPEND_TIME))
            .record(None, "y")
        )
        out = testing.run(Echo(), batch)
        self.assertEqual(out[0].key, b"k1")
        self.assertEqual(out[0].headers, [("a", b"1"), ("n", None), ("echo-greeting", b"hello")])
        self.assertEqual(
            out[0].value_str(),
            '{"topic":"in","partition":4,"offset":9,"timestamp":1732460000000,'
            '"timestamp_type":"create","key":"k1","value":"héllo",'
            '"headers":[["a","1"],["n",null]],"greeting":"hello"}',
        )
        self.assertIsNone(out[1].key)
        self.assertIn('"timestamp":5,"timestamp_type":"log_append","key":null', out[1].value_str() or "")
        self.assertIn('"timestamp":null,"timestamp_type":null', out[2].value_str() or "")

    def test_greeting_and_logs(self) -> None:
        testing.set_config({"output_topic": "o2", "greeting": "hi"})
        out = testing.run(Echo(), TestBatch().record(None, "log:note this"))
        self.assertEqual(out[0].topic, "o2")
        self.assertEqual(out[0].headers, [("echo-greeting", b"hi")])
        self.assertEqual(testing.take_logs(), [(Level.INFO, "note this")])

    def test_permanent_carries_the_index(self) -> None:
        with self.assertRaises(Permanent) as ctx:
            testing.run(Echo(), TestBatch().record(None, "ok").record(None, "permanent:bad input"))
        self.assertEqual((ctx.exception.message, ctx.exception.record_index), ("bad input", 1))

    def test_retryable_counts_per_instance(self) -> None:
        echo = Echo()
        batch = TestBatch().record(None, "retryable:a:2")
        for count in (1, 2):
            with self.assertRaises(Retryable) as ctx:
                testing.run(echo, batch)
            self.assertEqual(ctx.exception.message, f"retry a ({count} of 2)")
            self.assertEqual(ctx.exception.record_index, 0)
        self.assertEqual(len(testing.run(echo, batch)), 1)
        self.assertEqual(len(testing.run(Echo(), TestBatch().record(None, "retryable:b:0"))), 1)

    def test_missing_output_topic(self) -> None:
        testing.set_config({})
        with self.assertRaises(Permanent) as ctx:
            testing.run(Echo(), TestBatch().record(None, "x"))
        self.assertEqual(ctx.exception.message, "config key output_topic is not set")


if __name__ == "__main__":
    unittest.main()
