package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"example.invalid/ingesta/sdk/go/ingesta"
)

// Action is what a user did.
type Action uint8

// Actions, in schema order.
const (
	View Action = iota
	Click
	AddToCart
	Purchase
)

// actionNames are the actions as written in JSON, in schema order.
var actionNames = [...]string{"view", "click", "add_to_cart", "purchase"}

const expectedActions = "view, click, add_to_cart or purchase"

// Event is one user-activity event. Unknown extra fields are ignored, so
// producers can add fields without breaking this handler.
type Event struct {
	UserID      uint64
	Action      Action
	ProductID   uint64
	ProductName string
	Price       float64
	// TS is milliseconds since the Unix epoch; required by the schema,
	// unused here.
	TS int64
}

// ParseEvent parses and validates r's value. Any problem is a permanent
// error that names the field and the record, worded as the Rust example
// words it.
func ParseEvent(r ingesta.Record) (Event, error) {
	value := r.Value()
	if value == nil {
		return Event{}, r.Error("value is null, expected a JSON activity event")
	}
	doc, err := decode(value)
	if err != nil {
		return Event{}, r.Errorf("value is not valid JSON: %v", err)
	}
	if schemaNumberOutOfRange(doc) {
		// serde_json refuses numbers beyond f64 in the fields it reads
		// (extra fields are skipped unparsed).
		return Event{}, r.Error("value is not valid JSON: number out of range")
	}
	ev, problem := validate(doc)
	if problem != "" {
		return Event{}, r.Error(problem)
	}
	return ev, nil
}

// decode parses JSON keeping numbers as written, so they can be classed
// the way serde_json classes them.
func decode(value []byte) (any, error) {
	if !json.Valid(value) {
		var v any
		return nil, json.Unmarshal(value, &v)
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	return doc, nil
}

// field is one schema field: its name, its check and what it must be.
type field struct {
	name     string
	valid    func(any) bool
	expected string
}

var fields = []field{
	{"user_id", func(v any) bool { _, ok := asU64(v); return ok }, "a non-negative integer"},
	{"action", isString, "a string"},
	{"product_id", func(v any) bool { _, ok := asU64(v); return ok }, "a non-negative integer"},
	{"product_name", isString, "a string"},
	{"price", isNumber, "a number"},
	{"ts", func(v any) bool { _, ok := asI64(v); return ok }, "an integer (milliseconds since the epoch)"},
}

// validate checks doc against the schema, returning the event or what is
// wrong with it (naming the first bad field).
func validate(doc any) (Event, string) {
	obj, ok := doc.(map[string]any)
	if !ok {
		return Event{}, "event must be a JSON object, got " + excerpt(doc)
	}
	for _, f := range fields {
		v, present := obj[f.name]
		if !present {
			return Event{}, "missing field " + f.name
		}
		if !f.valid(v) && !(f.name == "action" && isUnitVariant(v)) {
			return Event{}, fmt.Sprintf("field %s must be %s, got %s", f.name, f.expected, excerpt(v))
		}
	}
	action, ok := parseAction(obj["action"])
	if !ok {
		return Event{}, fmt.Sprintf("field action has unknown value %s, expected %s",
			rustDebug(obj["action"].(string)), expectedActions)
	}
	ev := Event{Action: action, ProductName: obj["product_name"].(string)}
	ev.UserID, _ = asU64(obj["user_id"])
	ev.ProductID, _ = asU64(obj["product_id"])
	ev.TS, _ = asI64(obj["ts"])
	n, _ := classify(obj["price"].(json.Number))
	ev.Price = n.float()
	if ev.Price < 0 {
		return Event{}, "field price must not be negative, got " + strconv.FormatFloat(ev.Price, 'f', -1, 64)
	}
	return ev, ""
}

// parseAction reads an action as serde does for a unit enum variant: a
// string, or an object {"<variant>": null}.
func parseAction(v any) (Action, bool) {
	name, ok := v.(string)
	if !ok {
		for k := range v.(map[string]any) {
			name = k
		}
	}
	i := slices.Index(actionNames[:], name)
	return Action(i), i >= 0
}

func isUnitVariant(v any) bool {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return false
	}
	for k, val := range m {
		return val == nil && slices.Contains(actionNames[:], k)
	}
	return false
}

// number is a JSON number classed as serde_json classes it: a
// non-negative integer (u64), a negative one (i64) or a float.
type number struct {
	kind       byte // 'u', 'i' or 'f'
	u          uint64
	i          int64
	f          float64
	outOfRange bool
}

func (n number) float() float64 {
	switch n.kind {
	case 'u':
		return float64(n.u)
	case 'i':
		return float64(n.i)
	}
	return n.f
}

func classify(lit json.Number) (number, bool) {
	s := string(lit)
	if strings.ContainsAny(s, ".eE") {
		f, err := strconv.ParseFloat(s, 64)
		return number{kind: 'f', f: f, outOfRange: err != nil}, true
	}
	neg := strings.HasPrefix(s, "-")
	mag, err := strconv.ParseUint(strings.TrimPrefix(s, "-"), 10, 64)
	if err != nil { // more than 64 bits: serde_json parses a float
		f, err := strconv.ParseFloat(s, 64)
		return number{kind: 'f', f: f, outOfRange: err != nil}, true
	}
	if !neg {
		return number{kind: 'u', u: mag}, true
	}
	// serde_json: -0 and magnitudes beyond i64 become floats.
	if n := -int64(mag); n < 0 {
		return number{kind: 'i', i: n}, true
	}
	return number{kind: 'f', f: -float64(mag)}, true
}

func schemaNumberOutOfRange(doc any) bool {
	obj, ok := doc.(map[string]any)
	if !ok {
		return false
	}
	for _, f := range fields {
		if lit, ok := obj[f.name].(json.Number); ok {
			if n, _ := classify(lit); n.outOfRange {
				return true
			}
		}
	}
	return false
}

func asU64(v any) (uint64, bool) {
	lit, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	n, _ := classify(lit)
	return n.u, n.kind == 'u'
}

func asI64(v any) (int64, bool) {
	lit, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	n, _ := classify(lit)
	switch {
	case n.kind == 'i':
		return n.i, true
	case n.kind == 'u' && n.u <= math.MaxInt64:
		return int64(n.u), true
	}
	return 0, false
}

func isString(v any) bool { _, ok := v.(string); return ok }
func isNumber(v any) bool { _, ok := v.(json.Number); return ok }

// excerpt is v as serde_json writes it, cut to 40 characters, for error
// messages that quote what a producer sent.
func excerpt(v any) string {
	const max = 40
	text := string(appendValue(nil, v))
	if utf8.RuneCountInString(text) <= max {
		return text
	}
	n := 0
	for i := range text {
		if n == max {
			return text[:i] + "..."
		}
		n++
	}
	return text
}

// appendValue writes a decoded value as serde_json::Value's Display does:
// compact, object keys sorted, numbers as serde_json classes them.
func appendValue(dst []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		return strconv.AppendBool(dst, v)
	case string:
		s, _ := ingesta.MarshalJSON(v)
		return append(dst, s...)
	case json.Number:
		n, _ := classify(v)
		switch n.kind {
		case 'u':
			return strconv.AppendUint(dst, n.u, 10)
		case 'i':
			return strconv.AppendInt(dst, n.i, 10)
		}
		return ingesta.AppendFloat(dst, n.f)
	case []any:
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendValue(dst, e)
		}
		return append(dst, ']')
	case map[string]any:
		dst = append(dst, '{')
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendValue(dst, k)
			dst = append(dst, ':')
			dst = appendValue(dst, v[k])
		}
		return append(dst, '}')
	}
	return dst
}

// rustDebug quotes s as Rust's {:?} does.
func rustDebug(s string) string {
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
			if r < 0x20 || r == 0x7f || (r >= 0x80 && !unicode.IsPrint(r)) {
				fmt.Fprintf(&b, `\u{%x}`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
