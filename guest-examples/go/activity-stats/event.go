package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"example.invalid/ingesta/sdk/go/ingesta"
)

// Action is what an event is counted as.
type Action uint8

// Actions, in the stats record's order.
const (
	View Action = iota
	Click
	AddToCart
	Purchase
	// Other is any action none of the others is spelled as. It is counted
	// (other_actions), not refused: a producer's new action must not stop
	// the deployment.
	Other
)

// actions maps every accepted spelling, matched exactly (case-sensitive),
// to what it is counted as: the shop's own names, then the other spellings
// the contract accepts, such as the Spanish-language Kafka tutorial's
// added_to_cart and product_added_to_cart.
var actions = map[string]Action{
	"view": View, "page_view": View, "product_view": View, "viewed": View,
	"click": Click, "clicked": Click, "product_click": Click,
	"add_to_cart": AddToCart, "added_to_cart": AddToCart, "product_added_to_cart": AddToCart, "cart_add": AddToCart,
	"purchase": Purchase, "purchased": Purchase, "order": Purchase, "checkout": Purchase,
}

// ParseAction is what an action spelled s is counted as.
func ParseAction(s string) Action {
	if a, ok := actions[s]; ok {
		return a
	}
	return Other
}

// unknownProduct names the product of events without a product_id.
const unknownProduct = "unknown product"

// Event is one user-activity event. Unknown extra fields are ignored, so
// producers can add fields without breaking this handler. Optional fields
// are nil when the event lacks them (or they are null), so "absent" cannot
// be confused with a zero value.
type Event struct {
	UserID uint64
	Action Action
	// ProductID is nil for the unknown product.
	ProductID   *uint64
	ProductName *string
	// Price is nil when absent: a purchase then adds no revenue and raises
	// no alert.
	Price *float64
	// TS is milliseconds since the Unix epoch: the event's own, else the
	// record's timestamp, else nil.
	TS *int64
	// EventID is the producer's id as given (an int64 or a string), or nil.
	EventID any
}

// Name is the product's name as this event gives it: its own, else the
// product_id in decimal; always unknownProduct without a product_id, as
// such events may be about different products.
func (e *Event) Name() string {
	switch {
	case e.ProductID == nil:
		return unknownProduct
	case e.ProductName != nil:
		return *e.ProductName
	}
	return strconv.FormatUint(*e.ProductID, 10)
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
	if ev.TS == nil {
		// Producers such as kafka-python's tutorial send no ts: the
		// record's timestamp is the next best time for the event.
		if ts, ok := r.Timestamp(); ok {
			ev.TS = &ts
		}
	}
	return ev, nil
}

// decode parses JSON keeping numbers as written, so they can be classed
// the way serde_json classes them (and integer ids round-trip exactly).
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

// field is one schema field: its name, whether it is required, its check
// and what it must be.
type field struct {
	name     string
	required bool
	valid    func(any) bool
	expected string
}

// fields are checked in this order; the first bad one is named.
var fields = []field{
	{"user_id", true, isU64, "a non-negative integer"},
	{"action", true, isString, "a string"},
	{"product_id", false, isU64, "a non-negative integer"},
	{"product_name", false, isString, "a string"},
	{"price", false, isNumber, "a number"},
	{"ts", false, isI64, "an integer (milliseconds since the epoch)"},
	{"event_id", false, isEventID, "an integer or a string"},
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
		switch {
		case !present && f.required:
			return Event{}, "missing field " + f.name
		case v == nil && !f.required: // missing or null: absent
			continue
		case !f.valid(v): // a required field's null lands here too
			return Event{}, fmt.Sprintf("field %s must be %s, got %s", f.name, f.expected, excerpt(v))
		case f.name == "price":
			if p := toFloat(v); p < 0 {
				return Event{}, "field price must not be negative, got " + strconv.FormatFloat(p, 'f', -1, 64)
			}
		}
	}
	ev := Event{Action: ParseAction(obj["action"].(string))}
	ev.UserID, _ = asU64(obj["user_id"])
	if id, ok := asU64(obj["product_id"]); ok {
		ev.ProductID = &id
	}
	if name, ok := obj["product_name"].(string); ok {
		ev.ProductName = &name
	}
	if v, ok := obj["price"]; ok && v != nil {
		p := toFloat(v)
		ev.Price = &p
	}
	if ts, ok := asI64(obj["ts"]); ok {
		ev.TS = &ts
	}
	switch id := obj["event_id"].(type) {
	case string:
		ev.EventID = id
	case json.Number:
		ev.EventID, _ = asI64(id)
	}
	return ev, ""
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

func isU64(v any) bool    { _, ok := asU64(v); return ok }
func isI64(v any) bool    { _, ok := asI64(v); return ok }
func isString(v any) bool { _, ok := v.(string); return ok }
func isNumber(v any) bool { _, ok := v.(json.Number); return ok }

// isEventID: event ids are integers (Rust reads them as i64, so larger
// ones are refused rather than rounded) or strings.
func isEventID(v any) bool { return isString(v) || isI64(v) }

// toFloat is a JSON number's value as a float64 (as serde_json reads an
// f64).
func toFloat(v any) float64 {
	n, _ := classify(v.(json.Number))
	return n.float()
}

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
