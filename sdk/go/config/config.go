// Package config reads the deployment's configuration map: the only
// "environment" a handler has.
//
// The whole map is fetched from the host once, on first use, and kept for
// the life of the instance (configuration cannot change under a running
// instance). It can only be read during a call (in OnRecord, OnBatch,
// OnRequest, OnTick or a constructor registered with consumer.HandleNew or
// producer.ServeNew), not from init functions.
//
//	topic := config.GetOr("output_topic", "enriched")
//	threshold, err := config.ParseOr("alert_over", 500.0)
package config

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"example.invalid/ingesta/sdk/go/ingesta"
	"example.invalid/ingesta/sdk/go/internal/host"
)

// Entry is one configuration key and its value.
type Entry struct {
	Key, Value string
}

var (
	cached     []Entry
	loaded     bool
	generation uint64
)

func entries() []Entry {
	if g := host.ConfigGeneration(); !loaded || g != generation {
		raw := host.ConfigEntries()
		cached = make([]Entry, len(raw))
		for i, e := range raw {
			cached[i] = Entry{e[0], e[1]}
		}
		// The host sends them sorted; sorting again is cheap insurance for
		// the binary search below.
		slices.SortStableFunc(cached, func(a, b Entry) int { return strings.Compare(a.Key, b.Key) })
		loaded, generation = true, g
	}
	return cached
}

func lookup(key string) (string, bool) {
	all := entries()
	i, found := slices.BinarySearchFunc(all, key, func(e Entry, k string) int {
		return strings.Compare(e.Key, k)
	})
	if !found {
		return "", false
	}
	return all[i].Value, true
}

// Get is the value for key, and whether the deployment sets it.
func Get(key string) (string, bool) { return lookup(key) }

// GetOr is the value for key, or def if the deployment does not set it.
func GetOr(key, def string) string {
	if v, ok := lookup(key); ok {
		return v
	}
	return def
}

// Required is the value for key, or the permanent error
// "config key <key> is not set".
func Required(key string) (string, error) {
	if v, ok := lookup(key); ok {
		return v, nil
	}
	return "", ingesta.Permanentf("config key %s is not set", key)
}

// Entries is every key and value, sorted by key.
func Entries() []Entry { return slices.Clone(entries()) }

// Value is a type [Parse] can read: text, booleans (true or false),
// integers, floats (including inf and nan) and time.Duration (as
// time.ParseDuration reads it).
type Value interface {
	~string | ~bool |
		~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 |
		~float32 | ~float64
}

// Parse parses the value for key; ok is false if the key is not set.
//
// A value that does not parse is a permanent error naming the key, worded
// as the Rust SDK words it, e.g.
// `config key limit has invalid value "lots": invalid digit found in string`:
// no retry can fix a deployment's configuration.
func Parse[T Value](key string) (value T, ok bool, err error) {
	raw, ok := lookup(key)
	if !ok {
		return value, false, nil
	}
	value, problem := parse[T](raw)
	if problem != "" {
		return value, true, ingesta.Permanentf("config key %s has invalid value %s: %s", key, quote(raw), problem)
	}
	return value, true, nil
}

// ParseOr parses the value for key, or returns def if the key is not set.
func ParseOr[T Value](key string, def T) (T, error) {
	v, ok, err := Parse[T](key)
	if err != nil || !ok {
		return def, err
	}
	return v, nil
}

// parse reads raw as T, returning Rust's wording of the problem if it
// cannot.
func parse[T Value](raw string) (T, string) {
	var v T
	switch p := any(&v).(type) {
	case *time.Duration:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return v, strings.TrimPrefix(err.Error(), "time: ")
		}
		*p = d
		return v, ""
	}
	switch kind(v) {
	case kString:
		return convertString[T](raw), ""
	case kBool:
		switch raw {
		case "true":
			return convertBool[T](true), ""
		case "false":
			return convertBool[T](false), ""
		}
		return v, "provided string was not `true` or `false`"
	case kInt:
		n, err := strconv.ParseInt(raw, 10, bits(v))
		if err != nil {
			return v, intProblem(raw, err)
		}
		return convertInt[T](n), ""
	case kUint:
		// Rust accepts one leading +, as ParseInt does but ParseUint not.
		n, err := strconv.ParseUint(strings.TrimPrefix(raw, "+"), 10, bits(v))
		if err != nil {
			return v, intProblem(raw, err)
		}
		return convertUint[T](n), ""
	default: // floats
		if raw == "" {
			return v, "cannot parse float from empty string"
		}
		// ParseFloat also reads Go literals (0x1p4, 1_0) that Rust rejects.
		if !isRustFloat(raw) {
			return v, "invalid float literal"
		}
		// Rust also takes a signed nan; ParseFloat does not.
		if strings.EqualFold(strings.TrimLeft(raw, "+-"), "nan") {
			return convertFloat[T](math.NaN()), ""
		}
		// Like Rust, out-of-range literals become infinities (or zero):
		// ParseFloat returns those along with ErrRange.
		f, err := strconv.ParseFloat(raw, bits(v))
		if err != nil && !isRange(err) {
			return v, "invalid float literal"
		}
		return convertFloat[T](f), ""
	}
}

// isRustFloat reports whether Rust's f64::from_str accepts s: an optional
// sign, then inf, infinity or nan (in any case), or decimal digits with an
// optional point (at least one digit on either side) and an optional
// exponent (e or E, an optional sign, digits).
func isRustFloat(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	switch strings.ToLower(s) {
	case "inf", "infinity", "nan":
		return true
	}
	digits := func() int {
		n := 0
		for n < len(s) && '0' <= s[n] && s[n] <= '9' {
			n++
		}
		s = s[n:]
		return n
	}
	mantissa := digits()
	if s != "" && s[0] == '.' {
		s = s[1:]
		mantissa += digits()
	}
	if mantissa == 0 {
		return false
	}
	if s != "" && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if s != "" && (s[0] == '+' || s[0] == '-') {
			s = s[1:]
		}
		if digits() == 0 {
			return false
		}
	}
	return s == ""
}

func intProblem(raw string, err error) string {
	if raw == "" {
		return "cannot parse integer from empty string"
	}
	if isRange(err) {
		if strings.HasPrefix(raw, "-") {
			return "number too small to fit in target type"
		}
		return "number too large to fit in target type"
	}
	return "invalid digit found in string"
}

func isRange(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// quote writes s as Rust's {:?} does for the common cases.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case 0:
			b.WriteString(`\0`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u{%x}`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
