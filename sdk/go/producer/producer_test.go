package producer_test

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	"example.invalid/ingesta/sdk/go/ingesta"
	"example.invalid/ingesta/sdk/go/ingestatest"
	"example.invalid/ingesta/sdk/go/producer"
)

// orders accepts POSTed JSON orders and emits a heartbeat per tick.
type orders struct{ ticks int }

func (o *orders) OnRequest(r *ingesta.Request) (ingesta.Response, error) {
	if r.Method() != "POST" {
		return ingesta.TextResponse(405, "POST an order"), nil
	}
	var order struct {
		Customer *string `json:"customer"`
	}
	if err := r.DecodeJSON(&order); err != nil {
		return ingesta.Response{}, err
	}
	if order.Customer == nil {
		return ingesta.Response{}, ingesta.Permanent("field customer must be a string")
	}
	ingesta.Emit("orders", *order.Customer, r.Body())
	if v, ok := r.QueryParam("reject"); ok {
		return ingesta.JSONResponse(409, map[string]string{"rejected": v})
	}
	if _, ok := r.QueryParam("later"); ok {
		return ingesta.Response{}, ingesta.Retryable("try later")
	}
	return ingesta.Accepted(), nil
}

func (o *orders) OnTick(t ingesta.Tick) error {
	o.ticks++
	ingesta.Emit("heartbeats", ingesta.Null, ingesta.FormatFloat(float64(t.ScheduledMs)))
	return nil
}

func TestRequestIsAnsweredAndPublished(t *testing.T) {
	ingestatest.Reset()
	req := ingesta.NewRequest("POST", "/orders?x=1", []byte(`{"customer":"c7"}`)).WithHeader("X-Id", []byte("7"))
	resp, out, err := ingestatest.RunRequest(&orders{}, req)
	if err != nil || !reflect.DeepEqual(resp, ingesta.Accepted()) {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	if len(out) != 1 || out[0].Topic != "orders" || out[0].KeyString() != "c7" {
		t.Errorf("out %+v", out)
	}
	if req.Path() != "/orders" || req.Query() != "x=1" || string(req.Header("x-id")) != "7" {
		t.Errorf("request %+v", req)
	}
}

func TestStatus400OrMorePublishesNothing(t *testing.T) {
	ingestatest.Reset()
	resp, out, err := ingestatest.RunRequest(&orders{}, ingesta.NewRequest("POST", "/?reject=dup", []byte(`{"customer":"c"}`)))
	if err != nil || resp.Status != 409 || out != nil {
		t.Fatalf("resp %+v out %v err %v", resp, out, err)
	}
	if string(resp.Body) != `{"rejected":"dup"}` || resp.Headers[0] != [2]string{"content-type", "application/json"} {
		t.Errorf("resp %+v", resp)
	}
	resp, out, _ = ingestatest.RunRequest(&orders{}, ingesta.NewRequest("GET", "/", nil))
	if resp.Status != 405 || string(resp.Body) != "POST an order" || out != nil {
		t.Errorf("resp %+v", resp)
	}
}

func TestErrorsPublishNothing(t *testing.T) {
	ingestatest.Reset()
	_, out, err := ingestatest.RunRequest(&orders{}, ingesta.NewRequest("POST", "/?later", []byte(`{"customer":"c"}`)))
	if e := ingesta.AsError(err); e == nil || !e.IsRetryable() || out != nil {
		t.Errorf("err %v out %v", err, out)
	}
	_, _, err = ingestatest.RunRequest(&orders{}, ingesta.NewRequest("POST", "/", []byte(`{oops`)))
	if e := ingesta.AsError(err); e.IsRetryable() || !strings.HasPrefix(e.Message(), "request body is not valid JSON: ") {
		t.Errorf("err %v", err)
	}
}

func TestTicksKeepTheInstance(t *testing.T) {
	ingestatest.Reset()
	o := &orders{}
	for i := range 3 {
		out, err := ingestatest.RunTick(o, ingesta.Tick{Seq: uint64(i), ScheduledMs: 1000, IntervalMs: 10})
		if err != nil || len(out) != 1 || out[0].ValueString() != "1000.0" {
			t.Fatalf("out %v err %v", out, err)
		}
	}
	if o.ticks != 3 {
		t.Errorf("ticks %d", o.ticks)
	}
}

type onlyTicks struct{}

func (onlyTicks) OnTick(ingesta.Tick) error { return nil }

type onlyRequests struct{}

func (onlyRequests) OnRequest(*ingesta.Request) (ingesta.Response, error) {
	ingesta.Emit("t", "k", "v")
	return ingesta.OK(), nil
}

func TestMissingMethodsRefuse(t *testing.T) {
	ingestatest.Reset()
	_, _, err := ingestatest.RunRequest(onlyTicks{}, ingesta.NewRequest("POST", "/", nil))
	if e := ingesta.AsError(err); e.IsRetryable() || e.Message() != "this module does not accept HTTP requests (it has no OnRequest)" {
		t.Errorf("err %v", err)
	}
	_, err = ingestatest.RunTick(onlyRequests{}, ingesta.Tick{})
	if e := ingesta.AsError(err); e.IsRetryable() ||
		e.Message() != "this module does not handle ticks (it has no OnTick); deploy it without a schedule" {
		t.Errorf("err %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Serve accepted a value with neither method")
		}
	}()
	producer.Serve(42)
}

func TestRequestAccessors(t *testing.T) {
	r := ingesta.NewRequest("PUT", "/p?a=1&b&a=2&c=x%20y", []byte{0xff}).
		WithHeader("X-Key", []byte("k")).WithHeader("x-key", []byte("k2")).WithHeader("bin", []byte{0xc3})
	if v, ok := r.QueryParam("a"); !ok || v != "1" {
		t.Error("a")
	}
	if v, ok := r.QueryParam("b"); !ok || v != "" {
		t.Error("b")
	}
	if v, _ := r.QueryParam("c"); v != "x%20y" {
		t.Error("c is percent-decoded")
	}
	if _, ok := r.QueryParam("d"); ok {
		t.Error("d")
	}
	if string(r.Header("X-KEY")) != "k" || r.Header("none") != nil {
		t.Error("Header")
	}
	if _, ok := r.HeaderString("bin"); ok {
		t.Error("non-UTF-8 header as text")
	}
	var names []string
	for n := range r.Headers() {
		names = append(names, n)
	}
	if !reflect.DeepEqual(names, []string{"x-key", "x-key", "bin"}) {
		t.Errorf("names %v", names)
	}
	if _, err := r.BodyString(); err == nil || !strings.HasPrefix(ingesta.AsError(err).Message(), "request body is not UTF-8") {
		t.Errorf("BodyString %v", err)
	}
	if b := ingesta.NewRequest("POST", "/", nil).Body(); b == nil {
		t.Error("an empty body is null")
	}
}

// statusAnswer emits size bytes (over the 4 MiB early flush if asked) and
// answers status.
type statusAnswer struct {
	status uint16
	size   int
}

func (s statusAnswer) OnRequest(*ingesta.Request) (ingesta.Response, error) {
	ingesta.Emit("big", "k", strings.Repeat("x", s.size))
	return ingesta.NewResponse(s.status), nil
}

func TestRunRequestMatchesTheRunnersStatusRules(t *testing.T) {
	ingestatest.Reset()
	req := ingesta.NewRequest("POST", "/", nil)
	// A refusal publishes nothing, not even what was flushed early.
	resp, out, err := ingestatest.RunRequest(statusAnswer{409, 5 << 20}, req)
	if err != nil || resp.Status != 409 || len(out) != 0 {
		t.Errorf("409 after an early flush: %d records, %v", len(out), err)
	}
	if _, out, err := ingestatest.RunRequest(statusAnswer{200, 5 << 20}, req); err != nil || len(out) != 1 {
		t.Errorf("200 after an early flush: %d records, %v", len(out), err)
	}
	if _, out, err := ingestatest.RunRequest(statusAnswer{599, 1}, req); err != nil || len(out) != 0 {
		t.Errorf("599: %d records, %v", len(out), err)
	}
	for _, status := range []uint16{0, 101, 199, 600, 999} {
		_, out, err := ingestatest.RunRequest(statusAnswer{status, 1}, req)
		want := "permanent: the module answered with status " + strconv.Itoa(int(status)) +
			", which is not a final HTTP status (200-599); nothing was published"
		if err == nil || err.Error() != want || len(out) != 0 {
			t.Errorf("status %d: %d records, %v", status, len(out), err)
		}
	}
}
