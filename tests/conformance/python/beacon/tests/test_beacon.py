"""The beacon fixture against the Rust beacon's tests, plus ticks."""

import unittest

from ingesta import Permanent, Request, Response, Tick, testing
from ingesta.testing import Emitted

from beacon import Beacon


class BeaconTest(unittest.TestCase):
    def setUp(self) -> None:
        testing.reset()
        testing.set_config({"topic": "page-views"})

    def test_publishes_the_body_unchanged_keyed_by_x_key(self) -> None:
        body = '{"page": "/",\n "ms": 12}'
        response, out = testing.run_request(Beacon(), Request("POST", "/", body).with_header("X-Key", "user-7"))
        self.assertEqual(response, Response.accepted())
        self.assertEqual(out, [Emitted("page-views", b"user-7", body.encode(), [])])

    def test_without_x_key_the_key_is_null_and_bytes_pass_through(self) -> None:
        _, out = testing.run_request(Beacon(), Request("PUT", "/any?x=1", b"\x00\xff{\x80"))
        self.assertEqual((out[0].key, out[0].value), (None, b"\x00\xff{\x80"))
        _, out = testing.run_request(Beacon(), Request("POST", "/", ""))
        self.assertEqual(out[0].value, b"", "empty, not null")

    def test_ticks(self) -> None:
        beacon = Beacon()
        for seq in (0, 1):
            out = testing.run_tick(beacon, Tick(seq=seq))
            self.assertEqual(out, [Emitted("page-views", b"tick", f"tick {seq}".encode(), [])])

    def test_a_missing_topic_is_a_permanent_error_naming_the_key(self) -> None:
        testing.set_config({"output_topic": "page-views"})
        with self.assertRaises(Permanent) as ctx:
            testing.run_request(Beacon(), Request("POST", "/", "hello"))
        self.assertEqual(ctx.exception.message, "config key topic is not set")
        with self.assertRaises(Permanent):
            testing.run_tick(Beacon())


if __name__ == "__main__":
    unittest.main()
