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
	if want := `{"product_id":456,"product_name":"Trekking T-shirt","views":1,"clicks":0,"add_to_cart":2,"purchases":1,"revenue":19.9,"source":{"topic":"user-activity","partition":3,"first_offset":100,"last_offset":107}}`; stats[2] != want {
		t.Errorf("got  %s\nwant %s", stats[2], want)
	}
	if want := `{"product_id":12,"product_name":"Tent","views":1,"clicks":1,"add_to_cart":0,"purchases":1,"revenue":899.0,"source":{"topic":"user-activity","partition":3,"first_offset":100,"last_offset":107}}`; stats[0] != want {
		t.Errorf("got  %s\nwant %s", stats[0], want)
	}
	// 500.0 is not strictly above the default threshold.
	alerts := values(out, "user-activity-alerts")
	want := []string{`{"kind":"large_purchase","user_id":7,"product_id":12,"product_name":"Tent","price":899.0,"threshold":500.0,"source":{"topic":"user-activity","partition":3,"offset":104}}`}
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
	batch := shopBatch().Add(ingestatest.NewRecord("u4", event(1, "refund", 5, "Socks", 3.0)))
	out, err := ingestatest.Run(&ActivityStats{}, batch)
	e := ingesta.AsError(err)
	if out != nil || e == nil || e.IsRetryable() {
		t.Fatalf("out %v err %v", out, err)
	}
	if i, _ := e.RecordIndex(); i != 8 {
		t.Errorf("index %d", i)
	}
	if want := `field action has unknown value "refund", expected view, click, add_to_cart or purchase (topic user-activity, partition 3, offset 108)`; e.Message() != want {
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
	shirt := h.totals[456]
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
	batch := ingestatest.NewBatch("user-activity", 0).
		AddValues(event(1, "view", 1, "Old name", 1.0), event(1, "view", 1, "New name", 1.0))
	out, _ := ingestatest.Run(&ActivityStats{}, batch)
	if len(out) != 1 || !strings.Contains(out[0].ValueString(), `"product_name":"New name"`) {
		t.Errorf("out %v", out)
	}
}

const good = `{"user_id":123,"action":"add_to_cart","product_id":456,"product_name":"Trekking T-shirt","price":19.9,"ts":1732460000000}`

func parse(value string) (Event, string) {
	r, _ := ingestatest.NewBatch("user-activity", 3).AtOffset(120).AddValues(value).AsBatch().Get(0)
	ev, err := ParseEvent(r)
	if err != nil {
		return ev, strings.TrimSuffix(ingesta.AsError(err).Message(), " (topic user-activity, partition 3, offset 120)")
	}
	return ev, ""
}

func TestParsesAGoodEvent(t *testing.T) {
	ev, problem := parse(good)
	want := Event{UserID: 123, Action: AddToCart, ProductID: 456, ProductName: "Trekking T-shirt", Price: 19.9, TS: 1732460000000}
	if problem != "" || ev != want {
		t.Errorf("%+v %s", ev, problem)
	}
	// Extra fields, escapes and serde's {"variant": null} enum form.
	json := strings.NewReplacer("Trekking T-shirt", `Caf\u00e9 mug`, "}", `,"utm":"x"}`, `"add_to_cart"`, `{"purchase":null}`).Replace(good)
	if ev, problem := parse(json); problem != "" || ev.ProductName != "Café mug" || ev.Action != Purchase {
		t.Errorf("%+v %s", ev, problem)
	}
}

func TestExplainsBadEvents(t *testing.T) {
	long := fmt.Sprintf(`"%s"`, strings.Repeat("x", 100))
	cases := []struct{ input, want string }{
		{"[1,2]", "event must be a JSON object, got [1,2]"},
		{strings.Replace(good, `"price":19.9,`, "", 1), "missing field price"},
		{strings.Replace(good, "19.9", `"cheap"`, 1), `field price must be a number, got "cheap"`},
		{strings.Replace(good, "123", "-1", 1), "field user_id must be a non-negative integer, got -1"},
		{strings.Replace(good, "456", "null", 1), "field product_id must be a non-negative integer, got null"},
		{strings.Replace(good, "add_to_cart", "wishlist", 1), `field action has unknown value "wishlist", expected view, click, add_to_cart or purchase`},
		{strings.Replace(good, "1732460000000", `"yesterday"`, 1), `field ts must be an integer (milliseconds since the epoch), got "yesterday"`},
		{strings.Replace(good, "19.9", "-19.9", 1), "field price must not be negative, got -19.9"},
		{strings.Replace(good, "19.9", long, 1), `field price must be a number, got "` + strings.Repeat("x", 39) + "..."},
		{strings.Replace(good, "123", "1e2", 1), "field user_id must be a non-negative integer, got 100.0"},
		{strings.Replace(good, "19.9", "1e400", 1), "value is not valid JSON: number out of range"},
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
