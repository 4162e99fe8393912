"""JSON that reads and writes exactly like Rust's ``serde_json``.

This module owns the SDK's JSON codec, so that a Python guest emits the
same bytes as a Rust guest for the same data:

* :func:`to_json` writes compact JSON (no spaces), non-ASCII text as UTF-8
  (not ``\\u`` escapes), object fields in insertion order, integers in
  decimal and floats as ``serde_json`` 1.0.154 (the version in the
  workspace's ``Cargo.lock``, which formats with the ``zmij`` crate) writes
  an ``f64``: the shortest text that reads back as the same ``float``,
  always with a fractional part or an exponent. Between ``1e-5`` and
  ``1e16`` that is plain decimal (``899.0``, ``0.1``, ``0.00001``,
  ``1000000000000000.0``); outside it, an exponent with a sign and no
  padding (``1e+16``, ``1.5e-7``). Python's ``repr`` has the same digits
  and agrees everywhere except ``1e-5 <= |x| < 1e-4`` (``1e-05``) and
  negative exponents (``1e-07``); this module uses ``serde_json``'s layout
  at every magnitude (checked against ``serde_json`` on 200,000 values,
  random bit patterns included). NaN and infinities become ``null``, as
  in ``serde_json``. (Older ``serde_json`` releases, which used ``ryu``,
  wrote ``1e16`` without the ``+``.)
* :func:`from_json` refuses what ``serde_json`` refuses and Python's
  :func:`json.loads` accepts (``NaN``/``Infinity`` literals, numbers out of
  the ``f64`` range, lone UTF-16 surrogates), and reads numbers exactly as
  ``serde_json`` does: integers in ``[-2**63, 2**64)`` as ``int``, larger
  ones (and ``-0``) as ``float``, and decimals with ``serde_json``'s own
  arithmetic (one multiplication or division by a power of ten, as without
  its ``float_roundtrip`` feature), which for some 17-digit inputs is one
  unit in the last place away from Python's ``float()``:
  ``1.4000000000000001`` reads as ``1.4``, as in a Rust guest.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["to_json", "to_json_str", "from_json", "format_float", "JsonError"]

_encode_str = json.encoder.encode_basestring  # type: ignore[attr-defined]
_I64_MIN = -(2**63)
_U64_MAX = 2**64 - 1


def format_float(x: float) -> str:
    """``x`` as ``serde_json`` writes an ``f64`` (``null`` if not finite)."""
    if not math.isfinite(x):
        return "null"
    if x == 0.0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    text = repr(x)
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exp = text.partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    if frac_part == "0":
        frac_part = ""
    digits = (int_part + frac_part).lstrip("0")
    # The value is 0.<digits> scaled: digits * 10**k.
    k = (int(exp) if exp else 0) - len(frac_part)
    stripped = digits.rstrip("0")
    k += len(digits) - len(stripped)
    digits = stripped
    length = len(digits)
    kk = length + k  # 10**(kk-1) <= |x| < 10**kk
    if 0 <= k and kk <= 16:
        body = digits + "0" * k + ".0"
    elif 0 < kk <= 16:
        body = digits[:kk] + "." + digits[kk:]
    elif -5 < kk <= 0:
        body = "0." + "0" * (-kk) + digits
    elif length == 1:
        body = f"{digits}e{kk - 1:+d}"
    else:
        body = f"{digits[0]}.{digits[1:]}e{kk - 1:+d}"
    return sign + body


def _write(value: Any, out: list[str]) -> None:
    # bool before int: True is an int in Python, a boolean in JSON.
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_encode_str(value))
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(format_float(value))
    elif isinstance(value, Mapping):
        out.append("{")
        first = True
        for key, item in value.items():
            if not first:
                out.append(",")
            first = False
            out.append(_encode_str(_key(key)))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        out.append("{")
        for i, field in enumerate(dataclasses.fields(value)):
            if i:
                out.append(",")
            out.append(_encode_str(field.name))
            out.append(":")
            _write(getattr(value, field.name), out)
        out.append("}")
    else:
        raise TypeError(
            f"{type(value).__name__} is not JSON serializable "
            "(use dict, list, tuple, str, int, float, bool, None or a dataclass)"
        )


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)  # serde_json writes integer map keys as strings too
    raise TypeError("key must be a string")


def to_json_str(value: Any) -> str:
    """``value`` as compact JSON text, laid out exactly like ``serde_json``.

    Accepts ``dict`` (and other mappings, keys ``str`` or ``int``), ``list``,
    ``tuple``, ``str``, ``int``, ``float``, ``bool``, ``None`` and dataclass
    instances (fields in declaration order). Raises :class:`TypeError` for
    anything else.
    """
    out: list[str] = []
    _write(value, out)
    return "".join(out)


def to_json(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON bytes, exactly as ``serde_json``
    would write the equivalent Rust value; see :func:`to_json_str`.

    Raises :class:`TypeError` for unsupported types and
    :class:`UnicodeEncodeError` for strings with lone surrogates.
    """
    return to_json_str(value).encode("utf-8")


_POW10 = [float(f"1e{i}") for i in range(309)]
_I32_MAX = 2**31 - 1
_NUMBER = re.compile(r"-?([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?)([0-9]+))?\Z")


def _f64_from_parts(positive: bool, significand: int, exponent: int) -> float:
    # serde_json's `f64_from_parts` without the `float_roundtrip` feature:
    # one multiplication or division by a power of ten. Not always the
    # correctly rounded value (Python's float() is), but what Rust reads.
    f = float(significand)
    while True:
        if abs(exponent) <= 308:
            if exponent >= 0:
                f *= _POW10[exponent]
                if math.isinf(f):
                    raise ValueError("number out of range")
            else:
                f /= _POW10[-exponent]
            break
        if f == 0.0:
            break
        if exponent >= 0:
            raise ValueError("number out of range")
        f /= 1e308
        exponent += 308
    return f if positive else -f


def _serde_number(text: str) -> int | float:
    """A JSON number read exactly as ``serde_json`` 1.0.154 reads it (into a
    ``serde_json::Value`` or a Rust ``u64``/``i64``/``f64``)."""
    m = _NUMBER.match(text)
    if m is None:
        raise ValueError("invalid number")
    positive = not text.startswith("-")
    int_digits, frac_digits, exp_sign, exp_digits = m.groups()
    is_float = frac_digits is not None or exp_digits is not None
    digits = int_digits + (frac_digits or "")
    if len(digits) <= 19:  # fits a u64 whatever the digits: the common case
        significand = int(digits)
        exponent = -len(frac_digits) if frac_digits else 0
        if not is_float:
            if positive:
                return significand
            if 1 <= significand <= 2**63:
                return -significand
            return -float(significand)  # -0, or beyond i64: serde_json reads an f64
    else:
        # Digit by digit, as serde_json does: once the significand would
        # overflow a u64, further integer digits only scale it and further
        # fraction digits are dropped.
        significand, exponent, overflowed = 0, 0, False
        for ch in int_digits:
            if overflowed:
                exponent += 1
                continue
            nxt = significand * 10 + (ord(ch) - 48)
            if nxt > _U64_MAX:
                overflowed = True
                exponent += 1
            else:
                significand = nxt
        if not overflowed and not is_float:
            if positive:
                return significand
            if 1 <= significand <= 2**63:
                return -significand
            return -float(significand)
        for ch in frac_digits or "":
            nxt = significand * 10 + (ord(ch) - 48)
            if nxt > _U64_MAX:
                break
            significand = nxt
            exponent -= 1
    if exp_digits is not None:
        exp = 0
        for ch in exp_digits:
            exp = exp * 10 + (ord(ch) - 48)
            if exp > _I32_MAX:
                if significand != 0 and exp_sign != "-":
                    raise ValueError("number out of range")
                return 0.0 if positive else -0.0
        exponent = exponent - exp if exp_sign == "-" else exponent + exp
        exponent = max(-(2**31), min(_I32_MAX, exponent))  # i32 saturating
    return _f64_from_parts(positive, significand, exponent)


_parse_int = _serde_number
_parse_float = _serde_number


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"expected value, found {name}")


_DECODER = json.JSONDecoder(
    parse_int=_parse_int, parse_float=_parse_float, parse_constant=_refuse_constant
)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def _check_surrogates(value: Any) -> None:
    if isinstance(value, str):
        value.encode("utf-8")  # raises on a lone surrogate
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_surrogates(k)
            _check_surrogates(v)
    elif isinstance(value, list):
        for v in value:
            _check_surrogates(v)


class JsonError(json.JSONDecodeError):
    """Why :func:`from_json` refused a text. A :class:`json.JSONDecodeError`
    (so a :class:`ValueError`) whose text is worded like ``serde_json``'s:
    ``REASON at line L column C`` (just ``REASON`` when the position is not
    known)."""

    def __init__(self, msg: str, doc: str, pos: int | None) -> None:
        super().__init__(msg, doc, pos or 0)
        self.positioned = pos is not None
        """Whether :attr:`lineno` and :attr:`colno` say where the problem is."""

    def __str__(self) -> str:
        if self.positioned:
            return f"{self.msg} at line {self.lineno} column {self.colno}"
        return self.msg

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return self.__class__, (self.msg, self.doc, self.pos if self.positioned else None)


def from_json(data: bytes | bytearray | memoryview | str, *, object_pairs_hook: Any = None) -> Any:
    """Parses JSON text (UTF-8 bytes or ``str``) as strictly as ``serde_json``.

    Objects become ``dict`` (the last of duplicate keys wins, as in
    ``serde_json::Value``; pass ``object_pairs_hook``, as to
    :func:`json.loads`, to see every pair), arrays ``list``, numbers ``int``
    or ``float`` as described in the module docstring.

    Raises :class:`JsonError` (a :class:`json.JSONDecodeError`, so a
    :class:`ValueError`) if the text is not valid JSON; its ``str()`` reads
    like ``serde_json``'s ``... at line L column C``. An uncaught one in a
    handler becomes a permanent ``invalid JSON: ...`` error.
    """
    if isinstance(data, str):
        text = data
        raw = data.encode("utf-8", "surrogatepass")
    else:
        raw = bytes(data)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            doc = raw.decode("utf-8", "replace")
            pos = len(raw[: e.start].decode("utf-8", "replace"))
            raise JsonError("invalid unicode code point", doc, pos) from None
    decoder = _DECODER
    if object_pairs_hook is not None:
        decoder = json.JSONDecoder(
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_refuse_constant,
            object_pairs_hook=object_pairs_hook,
        )
    try:
        value = decoder.decode(text)
    except json.JSONDecodeError as e:
        raise JsonError(e.msg, e.doc, e.pos) from None
    except ValueError as e:  # from the number and constant hooks
        raise JsonError(str(e), text, None) from None
    if _SURROGATE_ESCAPE.search(raw):
        try:
            _check_surrogates(value)
        except UnicodeEncodeError:
            raise JsonError("lone surrogate in hex escape", text, None) from None
    return value
