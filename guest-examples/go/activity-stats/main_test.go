package main

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"example.invalid/ingesta/sdk/go/ingesta"
	"example.invalid/ingesta/sdk/go/ingestatest"
)

func event(user uint64, action string, product uint64, name string, price float64) string {
	b, _ := json.Marshal(map[string]any{
		"user_id": user, "action": action, "product_id": product,
		"product_name": name, "price": price, "ts": 1_732_460_000_000,
	})
	return string(b)
}

func values(out []ingestatest.Emitted, topic string) []string {
	var v []string
	for _, e := range out {
		if e.Topic == topic {
			v = append(v, e.ValueString())
		}
	}
	return v
}

func shopBatch() *ingestatest.Batch {
	return ingestatest.NewBatch("user-activity", 3).
		AtOffset(100).
		Add(ingestatest.NewRecord("u1", event(123, "view", 456, "Trekking T-shirt", 19.9))).
		Add(ingestatest.NewRecord("u1", event(123, "add_to_cart", 456, "Trekking T-shirt", 19.9))).
		Add(ingestatest.NewRecord("u2", event(7, "view", 12, "Tent", 899.0))).
		Add(ingestatest.NewRecord("u1", event(123, "add_to_cart", 456, "Trekking T-shirt", 19.9))).
		Add(ingestatest.NewRecord("u2", event(7, "purchase", 12, "Tent", 899.0))).
		Add(ingestatest.NewRecord("u1", event(123, "purchase", 456, "Trekking T-shirt", 19.9))).
		Add(ingestatest.NewRecord("u3", event(9, "click", 12, "Tent", 899.0))).
		Add(ingestatest.NewRecord("u3", event(9, "purchase", 99, "Gift card", 500.0)))
}

func TestEmitsStatsPerProductAndAlerts(t *testing.T) {
	ingestatest.Reset()
	out, err := ingestatest.Run(&ActivityStats{}, shopBatch())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range out {
		if e.Topic == "user-activity-stats" {
			keys = append(keys, e.KeyString())
		}
	}
	if !reflect.DeepEqual(keys, []string{"12", "99", "456"}) {
		t.Errorf("keys %v: not in ascending product_id order", keys)
	}
	stats := values(out, "user-activity-stats")
	if want := `{"product_id":456,"product_name":"Trekking T-shirt","views":1,"clicks":0,"add_to_cart":2,"purchases":1,"other_actions":0,"revenue":19.9,"source":{"topic":"user-activity","partition":3,"first_offset":100,"last_offset":107}}`; stats[2] != want {
		t.Errorf("got  %s\nwant %s", stats[2], want)
	}
	if want := `{"product_id":12,"product_name":"Tent","views":1,"clicks":1,"add_to_cart":0,"purchases":1,"other_actions":0,"revenue":899.0,"source":{"topic":"user-activity","partition":3,"first_offset":100,"last_offset":107}}`; stats[0] != want {
		t.Errorf("got  %s\nwant %s", stats[0], want)
	}
	// 500.0 is not strictly above the default threshold.
	alerts := values(out, "user-activity-alerts")
	want := []string{`{"kind":"large_purchase","event_id":null,"user_id":7,"product_id":12,"product_name":"Tent","price":899.0,"threshold":500.0,"ts":1732460000000,"source":{"topic":"user-activity","partition":3,"offset":104}}`}
	if !reflect.DeepEqual(alerts, want) {
		t.Errorf("alerts %v", alerts)
	}
	if out[len(out)-1].KeyString() != "7" {
		t.Error("alert key")
	}
}

func TestHonoursConfig(t *testing.T) {
	ingestatest.Reset()
	ingestatest.SetConfig(map[string]string{"stats_topic": "s", "alerts_topic": "a", "alert_purchase_over": "10"})
	out, err := ingestatest.Run(&ActivityStats{}, shopBatch())
	if err != nil {
		t.Fatal(err)
	}
	alerts := values(out, "a")
	if len(values(out, "s")) != 3 || len(alerts) != 3 {
		t.Fatalf("out %v", out)
	}
	if !strings.Contains(alerts[1], `"price":19.9,"threshold":10.0`) {
		t.Error(alerts[1])
	}
}

func TestBadThresholdIsAPermanentConfigError(t *testing.T) {
	for value, want := range map[string]string{
		"lots": `config key alert_purchase_over has invalid value "lots": invalid float literal`,
		"inf":  "config key alert_purchase_over must be a finite number",
		"NaN":  "config key alert_purchase_over must be a finite number",
	} {
		ingestatest.Reset()
		ingestatest.SetConfig(map[string]string{"alert_purchase_over": value})
		_, err := ingestatest.Run(&ActivityStats{}, shopBatch())
		if e := ingesta.AsError(err); e == nil || e.IsRetryable() || e.Message() != want {
			t.Errorf("%s: %v", value, err)
		}
	}
}

func TestOneBadEventFailsTheBatchAndEmitsNothing(t *testing.T) {
	ingestatest.Reset()
	batch := shopBatch().Add(ingestatest.NewRecord("u4", event(1, "purchase", 5, "Socks", -3.0)))
	out, err := ingestatest.Run(&ActivityStats{}, batch)
	e := ingesta.AsError(err)
	if out != nil || e == nil || e.IsRetryable() {
		t.Fatalf("out %v err %v", out, err)
	}
	if i, _ := e.RecordIndex(); i != 8 {
		t.Errorf("index %d", i)
	}
	if want := `field price must not be negative, got -3 (topic user-activity, partition 3, offset 108)`; e.Message() != want {
		t.Errorf("message %s", e.Message())
	}
}

func TestRevenueIsSummedInCents(t *testing.T) {
	ingestatest.Reset()
	batch := ingestatest.NewBatch("user-activity", 0)
	for range 10 {
		batch.AddValues(event(1, "purchase", 1, "Pin", 0.1))
	}
	out, err := ingestatest.Run(&ActivityStats{}, batch)
	if err != nil {
		t.Fatal(err)
	}
	// Ten float64 0.1s sum to 0.9999999999999999; cents keep it exact.
	if !strings.Contains(out[0].ValueString(), `"revenue":1.0,`) {
		t.Error(out[0].ValueString())
	}
	// Rounding is half away from zero, as Rust's f64::round.
	if cents(1000.005) != 100001 || cents(0.125) != 13 || cents(2.675) != 268 {
		t.Errorf("cents %d %d %d", cents(1000.005), cents(0.125), cents(2.675))
	}
	if cents(1e300) != 1<<63-1 || saturatingAdd(1<<63-1, 1) != 1<<63-1 {
		t.Error("no saturation")
	}
}

func TestKeepsRunningTotalsAndLogsOncePerBatch(t *testing.T) {
	ingestatest.Reset()
	h := &ActivityStats{}
	if _, err := ingestatest.Run(h, shopBatch()); err != nil {
		t.Fatal(err)
	}
	if _, err := ingestatest.Run(h, shopBatch().AtOffset(108)); err != nil {
		t.Fatal(err)
	}
	shirt := h.totals[productKey{id: 456}]
	if shirt.AddToCart != 4 || shirt.Purchases != 2 || shirt.Revenue() != 39.8 {
		t.Errorf("totals %+v", shirt)
	}
	logs := ingestatest.TakeLogs()
	if len(logs) != 2 || logs[0].Level != ingesta.LevelDebug ||
		logs[0].Message != "user-activity/3 offsets 100..=107: 8 events, 3 products, 1 alerts; 3 products seen by this instance" {
		t.Errorf("logs %+v", logs)
	}
}

func TestLatestProductNameWinsWithinABatch(t *testing.T) {
	ingestatest.Reset()
	batch := ingestatest.NewBatch("user-activity", 0).AddValues(
		event(1, "view", 1, "Old name", 1.0),
		event(1, "view", 1, "New name", 1.0),
		`{"user_id":1,"action":"view","product_id":1}`, // no name: keeps the last one given
	)
	out, _ := ingestatest.Run(&ActivityStats{}, batch)
	if len(out) != 1 || !strings.Contains(out[0].ValueString(), `"product_name":"New name"`) {
		t.Errorf("out %v", out)
	}
}

// The tutorial's events have no price, ts or (for the second) product_id,
// and their own action names; a product without a name is named by its id,
// and the unknown product comes after every known one.
func TestCountsTheTutorialsEvents(t *testing.T) {
	ingestatest.Reset()
	batch := ingestatest.NewBatch("user-activity", 3).AtOffset(10).AddValues(
		`{"user_id": 123, "action": "added_to_cart", "product_id": 456, "product_name": "Camiseta de Trekking"}`,
		`{"event_id": 123, "action": "product_added_to_cart", "user_id": 456}`,
		`{"user_id":5,"action":"wishlist","product_id":456}`,
		`{"user_id":5,"action":"viewed","product_id":12,"product_name":null}`,
		`{"user_id":5,"action":"checkout","price":null}`,
	)
	out, err := ingestatest.Run(&ActivityStats{}, batch)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range out {
		keys = append(keys, e.KeyString())
	}
	if !reflect.DeepEqual(keys, []string{"12", "456", "unknown"}) {
		t.Errorf("keys %v", keys)
	}
	const src = `"source":{"topic":"user-activity","partition":3,"first_offset":10,"last_offset":14}}`
	want := []string{
		`{"product_id":12,"product_name":"12","views":1,"clicks":0,"add_to_cart":0,"purchases":0,"other_actions":0,"revenue":0.0,` + src,
		`{"product_id":456,"product_name":"Camiseta de Trekking","views":0,"clicks":0,"add_to_cart":1,"purchases":0,"other_actions":1,"revenue":0.0,` + src,
		`{"product_id":null,"product_name":"unknown product","views":0,"clicks":0,"add_to_cart":1,"purchases":1,"other_actions":0,"revenue":0.0,` + src,
	}
	// A purchase without a price is counted but raises no alert.
	if got := values(out, "user-activity-stats"); !reflect.DeepEqual(got, want) || len(out) != 3 {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestCountsEveryAliasAndOtherActions(t *testing.T) {
	ingestatest.Reset()
	batch := ingestatest.NewBatch("user-activity", 0)
	for _, action := range []string{
		"view", "page_view", "product_view", "viewed",
		"click", "clicked", "product_click",
		"add_to_cart", "added_to_cart", "product_added_to_cart", "cart_add",
		"purchase", "purchased", "order", "checkout",
		"refund", "View", "add-to-cart", "",
	} {
		batch.AddValues(fmt.Sprintf(`{"user_id":1,"action":%q,"product_id":1,"price":1.25}`, action))
	}
	out, err := ingestatest.Run(&ActivityStats{}, batch)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"views":4,"clicks":3,"add_to_cart":4,"purchases":4,"other_actions":4,"revenue":5.0,`; !strings.Contains(out[0].ValueString(), want) {
		t.Errorf("got %s\nwant %s", out[0].ValueString(), want)
	}
}

func TestAlertsCarryTheEventIDAndTime(t *testing.T) {
	ingestatest.Reset()
	batch := ingestatest.NewBatch("user-activity", 3).AtOffset(120).
		AddValues(`{"event_id":"e-81","user_id":123,"action":"purchased","product_id":456,"price":999,"ts":1732460000000}`).
		Add(ingestatest.NewRecord(ingesta.Null, `{"event_id":81,"user_id":124,"action":"order","product_name":"Tent","price":600.5}`).
			Timestamp(1732460000999, ingesta.LogAppendTime)).
		AddValues(
			`{"event_id":null,"user_id":125,"action":"purchase","product_id":7,"product_name":"Tent","price":700}`,
			`{"event_id":"<\"&\"> \u2028","user_id":126,"action":"purchase","product_id":7,"price":701,"ts":-1}`,
			`{"event_id":9223372036854775807,"user_id":127,"action":"purchase","product_id":7}`, // no price: no alert
		)
	out, err := ingestatest.Run(&ActivityStats{}, batch)
	if err != nil {
		t.Fatal(err)
	}
	src := func(offset int) string {
		return fmt.Sprintf(`"source":{"topic":"user-activity","partition":3,"offset":%d}}`, offset)
	}
	want := []string{
		`{"kind":"large_purchase","event_id":"e-81","user_id":123,"product_id":456,"product_name":"456","price":999.0,"threshold":500.0,"ts":1732460000000,` + src(120),
		`{"kind":"large_purchase","event_id":81,"user_id":124,"product_id":null,"product_name":"unknown product","price":600.5,"threshold":500.0,"ts":1732460000999,` + src(121),
		`{"kind":"large_purchase","event_id":null,"user_id":125,"product_id":7,"product_name":"Tent","price":700.0,"threshold":500.0,"ts":null,` + src(122),
		"{\"kind\":\"large_purchase\",\"event_id\":\"<\\\"&\\\"> \u2028\",\"user_id\":126,\"product_id\":7,\"product_name\":\"7\",\"price\":701.0,\"threshold\":500.0,\"ts\":-1," + src(123),
	}
	if got := values(out, "user-activity-alerts"); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

const good = `{"user_id":123,"action":"add_to_cart","product_id":456,"product_name":"Trekking T-shirt","price":19.9,"ts":1732460000000}`

// parseRecord parses r as the only record of a batch, returning the event
// or the error message without its record suffix.
func parseRecord(r *ingestatest.Record) (Event, string) {
	rec, _ := ingestatest.NewBatch("user-activity", 3).AtOffset(120).Add(r).AsBatch().Get(0)
	ev, err := ParseEvent(rec)
	if err != nil {
		return ev, strings.TrimSuffix(ingesta.AsError(err).Message(), " (topic user-activity, partition 3, offset 120)")
	}
	return ev, ""
}

func parse(value string) (Event, string) {
	return parseRecord(ingestatest.NewRecord(ingesta.Null, value))
}

func TestParsesAGoodEvent(t *testing.T) {
	ev, problem := parse(good)
	want := Event{UserID: 123, Action: AddToCart, ProductID: new(uint64(456)), ProductName: new("Trekking T-shirt"),
		Price: new(19.9), TS: new(int64(1732460000000))}
	if problem != "" || !reflect.DeepEqual(ev, want) {
		t.Errorf("%+v %s", ev, problem)
	}
	// Extra fields and escapes.
	json := strings.NewReplacer("Trekking T-shirt", `Caf\u00e9 mug`, "}", `,"utm":"x"}`).Replace(good)
	if ev, problem := parse(json); problem != "" || *ev.ProductName != "Café mug" {
		t.Errorf("%+v %s", ev, problem)
	}
}

func TestParsesTheTutorialsEvents(t *testing.T) {
	at := func(value string) *ingestatest.Record {
		return ingestatest.NewRecord("k", value).Timestamp(1732460000123, ingesta.CreateTime)
	}
	ev, problem := parseRecord(at(`{"user_id": 123, "action": "added_to_cart", "product_id": 456, "product_name": "Camiseta de Trekking"}`))
	want := Event{UserID: 123, Action: AddToCart, ProductID: new(uint64(456)), ProductName: new("Camiseta de Trekking"),
		TS: new(int64(1732460000123))}
	if problem != "" || !reflect.DeepEqual(ev, want) {
		t.Errorf("%+v %s", ev, problem)
	}
	ev, problem = parseRecord(at(`{"event_id": 123, "action": "product_added_to_cart", "user_id": 456}`))
	want = Event{UserID: 456, Action: AddToCart, TS: new(int64(1732460000123)), EventID: int64(123)}
	if problem != "" || !reflect.DeepEqual(ev, want) {
		t.Errorf("%+v %s", ev, problem)
	}
}

func TestParsesEveryActionSpelling(t *testing.T) {
	for action, want := range map[string]Action{
		"view": View, "page_view": View, "product_view": View, "viewed": View,
		"click": Click, "clicked": Click, "product_click": Click,
		"add_to_cart": AddToCart, "added_to_cart": AddToCart, "product_added_to_cart": AddToCart, "cart_add": AddToCart,
		"purchase": Purchase, "purchased": Purchase, "order": Purchase, "checkout": Purchase,
		// Anything else is counted as other, not refused; matching is exact.
		"refund": Other, "": Other, "VIEW": Other, "Purchase": Other, " view": Other, "add-to-cart": Other,
	} {
		ev, problem := parse(fmt.Sprintf(`{"user_id":1,"action":%q}`, action))
		if problem != "" || ev.Action != want {
			t.Errorf("%q: got %d %s, want %d", action, ev.Action, problem, want)
		}
	}
}

func TestMissingOrNullOptionalFieldsAreAbsent(t *testing.T) {
	absent := map[string]func(Event) bool{
		"product_id":   func(e Event) bool { return e.ProductID == nil },
		"product_name": func(e Event) bool { return e.ProductName == nil },
		"price":        func(e Event) bool { return e.Price == nil },
		"ts":           func(e Event) bool { return e.TS == nil },
		"event_id":     func(e Event) bool { return e.EventID == nil },
	}
	withID := strings.Replace(good, "{", `{"event_id":"x",`, 1)
	for name, isAbsent := range absent {
		var doc map[string]any
		if err := json.Unmarshal([]byte(withID), &doc); err != nil {
			t.Fatal(err)
		}
		doc[name] = nil
		null, _ := json.Marshal(doc)
		delete(doc, name)
		missing, _ := json.Marshal(doc)
		for _, value := range []string{string(null), string(missing)} {
			ev, problem := parse(value)
			if problem != "" || !isAbsent(ev) {
				t.Errorf("%s: %+v %s", value, ev, problem)
			}
		}
	}
	// The smallest event: only what is required.
	ev, problem := parse(`{"user_id":1,"action":"view"}`)
	if want := (Event{UserID: 1, Action: View}); problem != "" || !reflect.DeepEqual(ev, want) {
		t.Errorf("%+v %s", ev, problem)
	}
}

func TestTsFallsBackToTheRecordTimestamp(t *testing.T) {
	noTS := `{"user_id":1,"action":"view","ts":null}`
	for _, typ := range []ingesta.TimestampType{ingesta.CreateTime, ingesta.LogAppendTime} {
		ev, _ := parseRecord(ingestatest.NewRecord("k", noTS).Timestamp(42, typ))
		if ev.TS == nil || *ev.TS != 42 {
			t.Errorf("%v: ts %v", typ, ev.TS)
		}
	}
	// The event's own ts wins over the record's.
	ev, _ := parseRecord(ingestatest.NewRecord("k", good).Timestamp(42, ingesta.CreateTime))
	if *ev.TS != 1732460000000 {
		t.Errorf("ts %d", *ev.TS)
	}
}

func TestEventIDsAreKeptAsGiven(t *testing.T) {
	for input, want := range map[string]any{
		`"e-81"`:              "e-81",
		`""`:                  "",
		`123`:                 int64(123),
		`-5`:                  int64(-5),
		`9223372036854775807`: int64(9223372036854775807), // exactly: no float64 on the way
		`9007199254740993`:    int64(9007199254740993),
	} {
		ev, problem := parse(strings.Replace(good, "{", `{"event_id":`+input+",", 1))
		if problem != "" || ev.EventID != want {
			t.Errorf("%s: got %#v %s", input, ev.EventID, problem)
		}
	}
}

func TestExplainsBadEvents(t *testing.T) {
	long := fmt.Sprintf(`"%s"`, strings.Repeat("x", 100))
	withID := func(id string) string { return strings.Replace(good, "{", `{"event_id":`+id+",", 1) }
	cases := []struct{ input, want string }{
		{"[1,2]", "event must be a JSON object, got [1,2]"},
		{"null", "event must be a JSON object, got null"},
		{`{"action":"view"}`, "missing field user_id"},
		{`{"user_id":1}`, "missing field action"},
		{`{"user_id":null,"action":"view"}`, "field user_id must be a non-negative integer, got null"},
		{`{"user_id":1,"action":null}`, "field action must be a string, got null"},
		{strings.Replace(good, "123", "-1", 1), "field user_id must be a non-negative integer, got -1"},
		{strings.Replace(good, "123", "1e2", 1), "field user_id must be a non-negative integer, got 100.0"},
		{strings.Replace(good, `"add_to_cart"`, "5", 1), "field action must be a string, got 5"},
		{strings.Replace(good, `"add_to_cart"`, `{"purchase":null}`, 1), `field action must be a string, got {"purchase":null}`},
		{strings.Replace(good, "456", `"abc"`, 1), `field product_id must be a non-negative integer, got "abc"`},
		{strings.Replace(good, `"Trekking T-shirt"`, "7", 1), "field product_name must be a string, got 7"},
		{strings.Replace(good, "19.9", `"cheap"`, 1), `field price must be a number, got "cheap"`},
		{strings.Replace(good, "19.9", "-19.9", 1), "field price must not be negative, got -19.9"},
		{strings.Replace(good, "19.9", long, 1), `field price must be a number, got "` + strings.Repeat("x", 39) + "..."},
		{strings.Replace(good, "1732460000000", `"yesterday"`, 1), `field ts must be an integer (milliseconds since the epoch), got "yesterday"`},
		{withID("[1]"), "field event_id must be an integer or a string, got [1]"},
		{withID("1.5"), "field event_id must be an integer or a string, got 1.5"},
		{withID("true"), "field event_id must be an integer or a string, got true"},
		// Beyond i64: refused rather than rounded.
		{withID("9223372036854775808"), "field event_id must be an integer or a string, got 9223372036854775808"},
		{withID(`{"id":1234567890,"source":"tutorial-producer"}`), `field event_id must be an integer or a string, got {"id":1234567890,"source":"tutorial-prod...`},
		// The first bad field in schema order is named; a negative price
		// comes before a bad ts.
		{strings.NewReplacer(`"Trekking T-shirt"`, "7", "1732460000000", "1.5").Replace(good), "field product_name must be a string, got 7"},
		{strings.NewReplacer("19.9", "-1", "1732460000000", "1.5").Replace(withID("[]")), "field price must not be negative, got -1"},
		{strings.NewReplacer("1732460000000", "1.5").Replace(withID("[]")), "field ts must be an integer (milliseconds since the epoch), got 1.5"},
		{strings.Replace(good, "19.9", "1e400", 1), "value is not valid JSON: number out of range"},
		{withID("1e400"), "value is not valid JSON: number out of range"},
	}
	for _, c := range cases {
		if _, problem := parse(c.input); problem != c.want {
			t.Errorf("input %s\n got %s\nwant %s", c.input, problem, c.want)
		}
	}
	if _, problem := parse("{not json"); !strings.HasPrefix(problem, "value is not valid JSON: ") {
		t.Error(problem)
	}
}

func TestNullValueIsExplained(t *testing.T) {
	r, _ := ingestatest.NewBatch("user-activity", 0).Add(ingestatest.NewRecord("k", ingesta.Null)).AsBatch().Get(0)
	_, err := ParseEvent(r)
	if !strings.HasPrefix(ingesta.AsError(err).Message(), "value is null, expected a JSON activity event") {
		t.Error(err)
	}
}
