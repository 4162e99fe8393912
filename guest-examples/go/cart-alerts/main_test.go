package main

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"example.invalid/ingesta/sdk/go/ingesta"
	"example.invalid/ingesta/sdk/go/ingestatest"
)

func ev(user int, action string, product int, ts int64) string {
	return fmt.Sprintf(`{"user_id":%d,"action":%q,"product_id":%d,"product_name":"P","price":1.5,"ts":%d}`,
		user, action, product, ts)
}

func run(t *testing.T, h *CartAlerts, b *ingestatest.Batch) []ingestatest.Emitted {
	t.Helper()
	out, err := ingestatest.Run(h, b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestABurstRaisesOneAlert(t *testing.T) {
	ingestatest.Reset()
	b := ingestatest.NewBatch("user-activity", 2).AtOffset(40).AddValues(
		ev(7, "add_to_cart", 1, 1000),
		ev(7, "view", 2, 1500),
		ev(8, "add_to_cart", 1, 1600),
		ev(7, "add_to_cart", 2, 2000),
		ev(7, "add_to_cart", 1, 3000), // third within 60 s: alert
		ev(7, "add_to_cart", 3, 4000), // same burst: no second alert
	)
	out := run(t, &CartAlerts{}, b)
	if len(out) != 1 || out[0].Topic != "cart-alerts" || out[0].KeyString() != "7" {
		t.Fatalf("out %+v", out)
	}
	want := `{"kind":"cart_burst","user_id":7,"count":3,"window_ms":60000,"first_ts":1000,"last_ts":3000,"product_ids":[1,2],"source":{"topic":"user-activity","partition":2,"offset":44}}`
	if out[0].ValueString() != want {
		t.Errorf("got  %s\nwant %s", out[0].ValueString(), want)
	}
}

func TestBurstsSpanBatchesAndWindowsSlide(t *testing.T) {
	ingestatest.Reset()
	ingestatest.SetConfig(map[string]string{"window_ms": "1000", "threshold": "2", "alerts_topic": "a"})
	h := &CartAlerts{}
	if out := run(t, h, ingestatest.NewBatch("in", 0).AddValues(ev(1, "add_to_cart", 1, 10_000))); len(out) != 0 {
		t.Fatalf("alert after one addition: %v", out)
	}
	out := run(t, h, ingestatest.NewBatch("in", 0).AtOffset(1).AddValues(
		ev(1, "add_to_cart", 2, 10_500), // second within 1 s, across batches: alert
		ev(1, "add_to_cart", 3, 12_000), // the old burst has left the window
		ev(1, "add_to_cart", 4, 12_900), // a new burst: alert again
	))
	if len(out) != 2 || out[0].Topic != "a" {
		t.Fatalf("out %+v", out)
	}
	var a Alert
	if err := out[1].DecodeValue(&a); err != nil {
		t.Fatal(err)
	}
	if a.FirstTS != 12_000 || a.LastTS != 12_900 || !reflect.DeepEqual(a.ProductIDs, []uint64{3, 4}) || a.Source.Offset != 3 {
		t.Errorf("alert %+v", a)
	}
}

func TestLateEventsCountByTheirTimestamp(t *testing.T) {
	ingestatest.Reset()
	ingestatest.SetConfig(map[string]string{"window_ms": "1000", "threshold": "3"})
	out := run(t, &CartAlerts{}, ingestatest.NewBatch("in", 0).AddValues(
		ev(1, "add_to_cart", 1, 5_000),
		ev(1, "add_to_cart", 1, 5_900),
		ev(1, "add_to_cart", 1, 3_000), // late, and far from the others
		ev(1, "add_to_cart", 1, 5_500),
	))
	var a Alert
	if len(out) != 1 || out[0].DecodeValue(&a) != nil || a.Count != 3 || a.FirstTS != 5_000 || a.LastTS != 5_900 {
		t.Errorf("out %+v alert %+v", out, a)
	}
}

func TestRedeliveredRecordsAreNotCountedTwice(t *testing.T) {
	ingestatest.Reset()
	ingestatest.SetConfig(map[string]string{"threshold": "2"})
	h := &CartAlerts{}
	batch := ingestatest.NewBatch("in", 0).AtOffset(100).AddValues(ev(1, "add_to_cart", 1, 1000))
	run(t, h, batch)
	if out := run(t, h, batch); len(out) != 0 {
		t.Errorf("the redelivered record completed a burst: %v", out)
	}
}

func TestABadRecordFailsTheBatchAndChangesNothing(t *testing.T) {
	ingestatest.Reset()
	ingestatest.SetConfig(map[string]string{"threshold": "2"})
	h := &CartAlerts{}
	bad := ingestatest.NewBatch("in", 1).AtOffset(5).AddValues(ev(1, "add_to_cart", 1, 1000), `{"user_id":1,"action":"add_to_cart"}`)
	_, err := ingestatest.Run(h, bad)
	e := ingesta.AsError(err)
	if e == nil || e.IsRetryable() || e.Message() != "missing field ts and the record has no timestamp (topic in, partition 1, offset 6)" {
		t.Fatalf("err %v", err)
	}
	if i, _ := e.RecordIndex(); i != 1 {
		t.Errorf("index %d", i)
	}
	if len(h.users) != 0 {
		t.Error("a failed batch changed the state")
	}
	_, err = ingestatest.Run(h, ingestatest.NewBatch("in", 1).AddValues("not json"))
	if !strings.HasPrefix(ingesta.AsError(err).Message(), "value is not valid JSON") {
		t.Error(err)
	}
}

// at is a record with value v and timestamp ts (as Kafka producers such
// as kafka-python's set by default).
func at(ts int64, v string) *ingestatest.Record {
	return ingestatest.NewRecord(ingesta.Null, v).Timestamp(ts, ingesta.CreateTime)
}

func TestTheTutorialsEventsMakeABurst(t *testing.T) {
	ingestatest.Reset()
	ingestatest.SetConfig(map[string]string{"threshold": "2"})
	b := ingestatest.NewBatch("user-activity", 0).Add(
		at(1000, `{"user_id": 123, "action": "added_to_cart", "product_id": 456, "product_name": "Camiseta de Trekking"}`),
		at(2000, `{"event_id": 123, "action": "product_added_to_cart", "user_id": 123}`),
	)
	out := run(t, &CartAlerts{}, b)
	want := `{"kind":"cart_burst","user_id":123,"count":2,"window_ms":60000,"first_ts":1000,"last_ts":2000,"product_ids":[456],"source":{"topic":"user-activity","partition":0,"offset":1}}`
	if len(out) != 1 || out[0].ValueString() != want {
		t.Errorf("out %+v\nwant %s", out, want)
	}
}

func TestEveryAddToCartSpellingCounts(t *testing.T) {
	ingestatest.Reset()
	ingestatest.SetConfig(map[string]string{"threshold": "4"})
	b := ingestatest.NewBatch("in", 0)
	// Only exact spellings count: these are ignored.
	for i, action := range []string{"Add_to_cart", "add-to-cart", "added to cart", "view", "purchase"} {
		b.AddValues(ev(1, action, 1, int64(i)))
	}
	for i, action := range []string{"add_to_cart", "added_to_cart", "product_added_to_cart", "cart_add"} {
		b.AddValues(ev(1, action, i+1, int64(100+i)))
	}
	var a Alert
	out := run(t, &CartAlerts{}, b)
	if len(out) != 1 || out[0].DecodeValue(&a) != nil || a.Count != 4 || a.FirstTS != 100 || a.Source.Offset != 8 {
		t.Errorf("out %+v alert %+v", out, a)
	}
}

func TestMissingTsIsTheRecordTimestamp(t *testing.T) {
	ingestatest.Reset()
	ingestatest.SetConfig(map[string]string{"threshold": "3", "window_ms": "1000"})
	out := run(t, &CartAlerts{}, ingestatest.NewBatch("in", 0).Add(
		at(5_000, `{"user_id":1,"action":"add_to_cart","product_id":1}`),
		at(5_100, `{"user_id":1,"action":"add_to_cart","product_id":1,"ts":null}`),
		at(9_999, ev(1, "add_to_cart", 1, 5_200)), // the event's own ts wins
	))
	var a Alert
	if len(out) != 1 || out[0].DecodeValue(&a) != nil || a.FirstTS != 5_000 || a.LastTS != 5_200 {
		t.Errorf("out %+v alert %+v", out, a)
	}
	// No ts and no record timestamp: the event cannot be placed.
	_, err := ingestatest.Run(&CartAlerts{}, ingestatest.NewBatch("in", 0).AddValues(`{"user_id":1,"action":"view"}`))
	if e := ingesta.AsError(err); e == nil || e.IsRetryable() ||
		e.Message() != "missing field ts and the record has no timestamp (topic in, partition 0, offset 0)" {
		t.Errorf("err %v", err)
	}
}

func TestAdditionsWithoutAProductCountButListNone(t *testing.T) {
	ingestatest.Reset()
	b := ingestatest.NewBatch("in", 0).AddValues(
		`{"user_id":1,"action":"add_to_cart","ts":1000}`,
		`{"user_id":1,"action":"add_to_cart","product_id":null,"ts":2000}`,
		`{"user_id":1,"action":"add_to_cart","product_id":7,"ts":3000}`,
		`{"user_id":2,"action":"add_to_cart","ts":1000}`,
		`{"user_id":2,"action":"add_to_cart","ts":1001}`,
		`{"user_id":2,"action":"cart_add","ts":1002}`,
	)
	out := run(t, &CartAlerts{}, b)
	if len(out) != 2 {
		t.Fatalf("out %+v", out)
	}
	for i, want := range []string{`"count":3,`, `"product_ids":[7],`, `"count":3,`, `"product_ids":[],`} {
		if !strings.Contains(out[i/2].ValueString(), want) {
			t.Errorf("%s lacks %s", out[i/2].ValueString(), want)
		}
	}
}

func TestIdleUsersAreForgotten(t *testing.T) {
	ingestatest.Reset()
	ingestatest.SetConfig(map[string]string{"window_ms": "1000"})
	h := &CartAlerts{}
	run(t, h, ingestatest.NewBatch("in", 0).AddValues(ev(1, "add_to_cart", 1, 1000), ev(2, "add_to_cart", 1, 1500)))
	run(t, h, ingestatest.NewBatch("in", 0).AtOffset(2).AddValues(ev(3, "add_to_cart", 1, 2200)))
	if _, ok := h.users[1]; ok || len(h.users) != 2 {
		t.Errorf("users %v", h.users)
	}
	logs := ingestatest.TakeLogs()
	if len(logs) != 2 || logs[1].Message != "in/0: 1 add-to-cart events, 0 alerts, 2 users tracked" {
		t.Errorf("logs %+v", logs)
	}
}

func TestBadSettingsArePermanent(t *testing.T) {
	for cfg, want := range map[string]string{
		"window_ms=0":    "config key window_ms must be positive, got 0",
		"threshold=1":    "config key threshold must be at least 2, got 1",
		"threshold=many": `config key threshold has invalid value "many": invalid digit found in string`,
	} {
		ingestatest.Reset()
		k, v, _ := strings.Cut(cfg, "=")
		ingestatest.SetConfig(map[string]string{k: v})
		_, err := ingestatest.Run(&CartAlerts{}, ingestatest.NewBatch("in", 0).AddValues(ev(1, "view", 1, 1)))
		if e := ingesta.AsError(err); e == nil || e.IsRetryable() || e.Message() != want {
			t.Errorf("%s: %v", cfg, err)
		}
	}
}
