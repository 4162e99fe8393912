"""JSON bytes identical to serde_json 1.0.154's, and serde_json's strictness
when reading. The float vectors were produced by serde_json itself."""

import json
import math
import unittest
from dataclasses import dataclass

from ingesta import from_json, to_json, to_json_str
from ingesta._json import format_float

# (value, what serde_json::to_string(&value_f64) writes)
FLOATS = [
    (0.0, "0.0"), (-0.0, "-0.0"), (1.0, "1.0"), (899.0, "899.0"), (19.9, "19.9"),
    (0.1 + 0.2, "0.30000000000000004"), (1000.005, "1000.005"),
    (1e15, "1000000000000000.0"), (1e16, "1e+16"), (1.5e16, "1.5e+16"),
    (1e-5, "0.00001"), (1e-4, "0.0001"), (1e-6, "1e-6"), (1.5e-7, "1.5e-7"),
    (123456789012345680.0, "1.2345678901234568e+17"), (5e-324, "5e-324"),
    (1.7976931348623157e308, "1.7976931348623157e+308"), (2.0**53, "9007199254740992.0"),
    (2.0**63, "9.223372036854776e+18"), (2.0**64, "1.8446744073709552e+19"),
    (1e21, "1e+21"), (1.2345678e-6, "1.2345678e-6"), (-19.9, "-19.9"),
    (math.nan, "null"), (math.inf, "null"), (-math.inf, "null"),
]


@dataclass
class Stat:
    id: int
    name: str
    ratio: float


class ToJsonTest(unittest.TestCase):
    def test_floats_match_serde_json(self) -> None:
        for value, expected in FLOATS:
            self.assertEqual(format_float(value), expected, repr(value))
            self.assertEqual(to_json(value), expected.encode(), repr(value))

    def test_compact_ordered_utf8(self) -> None:
        value = {"b": 1, "a": [True, False, None], "é": "naïve & <tag> \"q\" \\ \n\t\x01\x7f",
                 "n": -5, "big": 2**64 - 1, "t": (1, 2.5)}
        self.assertEqual(
            to_json(value),
            '{"b":1,"a":[true,false,null],"é":"naïve & <tag> \\"q\\" \\\\ \\n\\t\\u0001\x7f",'
            '"n":-5,"big":18446744073709551615,"t":[1,2.5]}'.encode(),
        )

    def test_dataclasses_and_int_keys(self) -> None:
        self.assertEqual(to_json_str(Stat(1, "x", 0.5)), '{"id":1,"name":"x","ratio":0.5}')
        self.assertEqual(to_json_str({1: "a"}), '{"1":"a"}')

    def test_unsupported_values_name_the_problem(self) -> None:
        with self.assertRaisesRegex(TypeError, "key must be a string"):
            to_json({1.5: 1})
        with self.assertRaisesRegex(TypeError, "set is not JSON serializable"):
            to_json({"s": {1}})
        with self.assertRaises(UnicodeEncodeError):
            to_json("\ud800")


class FromJsonTest(unittest.TestCase):
    def test_reads_like_serde_json_value(self) -> None:
        self.assertEqual(from_json(b'{"a":[1,2.5,"\\u00e9"],"a":2}'), {"a": 2})
        self.assertEqual(from_json("18446744073709551615"), 2**64 - 1)
        big = from_json("18446744073709551616")
        self.assertIsInstance(big, float, "beyond u64: f64, as serde_json")
        self.assertIsInstance(from_json("-9223372036854775809"), float)
        zero = from_json("-0")
        self.assertIsInstance(zero, float)
        self.assertEqual(math.copysign(1.0, zero), -1.0)
        self.assertEqual(from_json('"\\ud83d\\ude00"'), "😀")

    def test_refuses_what_serde_json_refuses(self) -> None:
        for bad in [b"NaN", b"[Infinity]", b"-Infinity", b"1e400", b'"\\ud800"', b"{oops",
                    b"[1,]", b"\xff", b"1 2", b'"a\x01"']:
            with self.assertRaises(ValueError, msg=bad):
                from_json(bad)

    def test_syntax_errors_carry_the_position(self) -> None:
        with self.assertRaises(json.JSONDecodeError) as ctx:
            from_json(b"{not json")
        self.assertEqual((ctx.exception.lineno, ctx.exception.colno), (1, 2))


if __name__ == "__main__":
    unittest.main()
