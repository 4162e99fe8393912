package ingesta

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"sync"
	"unicode/utf8"
)

// MarshalJSON serializes v as compact JSON, byte for byte as the Rust SDK's
// serde_json does for the same data: struct fields in declaration order,
// no HTML escaping of <, > and &, U+2028 and U+2029 written as they are,
// and no trailing newline. Floats match serde_json only when they are of
// type [Float] (plain float64 fields are written the encoding/json way:
// 899 rather than 899.0). Map keys are sorted, as for a Rust BTreeMap.
func MarshalJSON(v any) ([]byte, error) {
	return appendJSON(nil, v)
}

// jsonBufs reuse encoding buffers across calls.
var jsonBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// appendJSON appends v's JSON (see MarshalJSON) to dst.
func appendJSON(dst []byte, v any) ([]byte, error) {
	jsonBuf := jsonBufs.Get().(*bytes.Buffer)
	defer jsonBufs.Put(jsonBuf)
	jsonBuf.Reset()
	enc := json.NewEncoder(jsonBuf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return dst, err
	}
	out := jsonBuf.Bytes()
	out = out[:len(out)-1] // Encode's newline
	if !bytes.Contains(out, []byte(`\u202`)) {
		return append(dst, out...), nil
	}
	return unescapeSeparators(dst, out), nil
}

// unescapeSeparators appends src to dst with encoding/json's \u2028 and
// \u2029 escapes replaced by the raw characters, as serde_json writes them.
// Backslashes occur only inside strings and always start a two-character
// (or \uXXXX) escape, so a left-to-right scan finds exactly the escapes.
func unescapeSeparators(dst, src []byte) []byte {
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c != '\\' || i+1 >= len(src) {
			dst = append(dst, c)
			continue
		}
		if src[i+1] == 'u' && i+5 < len(src) && string(src[i+2:i+5]) == "202" &&
			(src[i+5] == '8' || src[i+5] == '9') {
			dst = utf8.AppendRune(dst, rune(0x2020+int(src[i+5]-'0')))
			i += 5
			continue
		}
		dst = append(dst, c, src[i+1])
		i++
	}
	return dst
}

// Float is a float64 that marshals to JSON exactly as serde_json (Rust)
// writes an f64: the shortest digits that round-trip, laid out as the ryu
// crate does. Integral values keep a fraction (899.0, 0.0, -0.0), numbers
// from 1e-5 up to below 1e16 are written in plain decimal (0.00001,
// 1234567890123456.0, 0.30000000000000004), others in exponent form
// (1e+16, 1.5e-7, 1.7976931348623157e+308). NaN and infinities are written
// as null, as serde_json does. The output is byte-identical to serde_json
// for every float64.
type Float float64

// MarshalJSON writes f as serde_json does.
func (f Float) MarshalJSON() ([]byte, error) {
	return AppendFloat(nil, float64(f)), nil
}

// AppendFloat appends f in serde_json's format (see [Float]) to dst; NaN
// and infinities append null.
func AppendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	if math.Signbit(f) {
		dst = append(dst, '-')
		f = -f
	}
	if f == 0 {
		return append(dst, "0.0"...)
	}
	// Shortest round-trip digits and exponent: "d.ddde±XX".
	var scratch [32]byte
	e := strconv.AppendFloat(scratch[:0], f, 'e', -1, 64)
	mark := bytes.IndexByte(e, 'e')
	mantissa := e[:mark]
	exp, _ := strconv.Atoi(string(e[mark+1:]))
	var digitBuf [24]byte
	digits := append(digitBuf[:0], mantissa[0])
	if len(mantissa) > 2 {
		digits = append(digits, mantissa[2:]...)
	}
	// value = digits × 10^k; kk is where the decimal point goes.
	length := len(digits)
	k := exp - (length - 1)
	kk := length + k
	switch {
	case 0 <= k && kk <= 16:
		dst = append(dst, digits...)
		for range k {
			dst = append(dst, '0')
		}
		return append(dst, ".0"...)
	case 0 < kk && kk <= 16:
		dst = append(dst, digits[:kk]...)
		dst = append(dst, '.')
		return append(dst, digits[kk:]...)
	case -5 < kk && kk <= 0:
		dst = append(dst, "0."...)
		for range -kk {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	case length == 1:
		dst = append(dst, digits[0])
		return appendExponent(dst, kk-1)
	default:
		dst = append(dst, digits[0], '.')
		dst = append(dst, digits[1:]...)
		return appendExponent(dst, kk-1)
	}
}

func appendExponent(dst []byte, exp int) []byte {
	dst = append(dst, 'e')
	if exp >= 0 {
		dst = append(dst, '+')
	}
	return strconv.AppendInt(dst, int64(exp), 10)
}

// FormatFloat returns f in serde_json's format (see [Float]).
func FormatFloat(f float64) string {
	return string(AppendFloat(nil, f))
}
