"""Config lookups, typed parsing with Rust's rules and messages, caching;
log levels and lazy formatting."""

import unittest

from ingesta import Permanent, config, log, testing
from ingesta import _host
from ingesta.log import Level


class ConfigTest(unittest.TestCase):
    def setUp(self) -> None:
        testing.reset()

    def test_reads_values_and_defaults(self) -> None:
        testing.set_config([("b", "2"), ("a", "1")])
        self.assertEqual(config.get("a"), "1")
        self.assertEqual(config.get("b"), "2")
        self.assertIsNone(config.get("c"))
        self.assertEqual(config.get_or("c", "fallback"), "fallback")
        self.assertEqual(config.entries(), [("a", "1"), ("b", "2")])

    def test_require_names_the_key(self) -> None:
        testing.set_config({"a": "1"})
        self.assertEqual(config.require("a"), "1")
        with self.assertRaises(Permanent) as ctx:
            config.require("output_topic")
        self.assertEqual(ctx.exception.message, "config key output_topic is not set")

    def test_parses_typed_values(self) -> None:
        testing.set_config({"limit": "500.5", "bad": "lots", "n": "7", "on": "true"})
        self.assertEqual(config.parse("limit", float), 500.5)
        self.assertIsNone(config.parse("missing", float))
        self.assertEqual(config.parse_or("missing", 7), 7)
        self.assertEqual(config.parse_or("n", 1), 7)
        self.assertIs(config.parse_or("on", False), True)
        self.assertEqual(config.parse_or("limit", 0.0), 500.5)
        self.assertEqual(config.parse("n", lambda s: s * 2), "77")
        with self.assertRaises(Permanent) as ctx:
            config.parse("bad", int)
        self.assertEqual(
            ctx.exception.message,
            'config key bad has invalid value "lots": invalid digit found in string',
        )
        with self.assertRaises(Permanent) as ctx:
            config.parse_or("bad", 1.0)
        self.assertEqual(
            ctx.exception.message, 'config key bad has invalid value "lots": invalid float literal'
        )

    def test_rust_number_syntax(self) -> None:
        good = {"1e3": 1000.0, "+5": 5.0, ".5": 0.5, "5.": 5.0, "inf": float("inf"),
                "-Infinity": float("-inf")}
        for text, expected in good.items():
            testing.set_config({"k": text})
            self.assertEqual(config.parse("k", float), expected, text)
        for text in [" 5", "1_000", "0x10", "", "1e"]:
            testing.set_config({"k": text})
            with self.assertRaises(Permanent, msg=text):
                config.parse("k", float)
        for text in ["1.0", " 1", "1_0", ""]:
            testing.set_config({"k": text})
            with self.assertRaises(Permanent, msg=text):
                config.parse("k", int)
        testing.set_config({"k": "True"})
        with self.assertRaises(Permanent) as ctx:
            config.parse("k", bool)
        self.assertEqual(
            ctx.exception.message,
            'config key k has invalid value "True": provided string was not `true` or `false`',
        )

    def test_caches_the_first_answer(self) -> None:
        testing.set_config({"k": "v1"})
        self.assertEqual(config.get("k"), "v1")
        host = _host.current()
        assert isinstance(host, _host.NativeHost)
        host.config.clear()
        self.assertEqual(config.get("k"), "v1")


class LogTest(unittest.TestCase):
    def setUp(self) -> None:
        testing.reset()

    def test_functions_format_and_forward(self) -> None:
        log.info("plain")
        log.warn("%d of %d", 2, 3)
        log.error("boom: %(reason)s", {"reason": "x"})
        log.log(Level.DEBUG, "direct")
        log.trace("100%")  # no args: not %-formatted
        self.assertEqual(
            testing.take_logs(),
            [
                (Level.INFO, "plain"),
                (Level.WARN, "2 of 3"),
                (Level.ERROR, "boom: x"),
                (Level.DEBUG, "direct"),
                (Level.TRACE, "100%"),
            ],
        )
        self.assertEqual(testing.take_logs(), [])

    def test_max_level_filters_before_formatting(self) -> None:
        class Explodes:
            def __str__(self) -> str:
                raise AssertionError("formatted a disabled line")

        log.set_max_level(Level.INFO)
        log.debug("%s", Explodes())
        log.trace("%s", Explodes())
        log.info("kept")
        self.assertEqual(testing.take_logs(), [(Level.INFO, "kept")])
        self.assertFalse(log.enabled(Level.DEBUG))
        self.assertTrue(log.enabled(Level.ERROR))
        self.assertEqual(log.max_level(), Level.INFO)


if __name__ == "__main__":
    unittest.main()
