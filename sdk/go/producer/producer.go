// Package producer turns a Go value into an ingesta producer component
// (WIT world producer): it owns registering the producer and calling it
// with HTTP requests and timer ticks.
//
// A producer answers requests to /v1/ingest/<deployment>[/<path>]
// (webhooks, beacons, gateways) with OnRequest ([RequestHandler]) and/or
// ticks of the deployment's schedule (generators) with OnTick
// ([TickHandler]). A method it lacks refuses its calls with a permanent
// error.
//
//	type Orders struct{}
//
//	func (Orders) OnRequest(r *ingesta.Request) (ingesta.Response, error) {
//		ingesta.Emit("orders", r.Header("x-customer"), r.Body())
//		return ingesta.Accepted(), nil
//	}
//
//	func init() { producer.Serve(Orders{}) }
//
//	func main() {}
//
// Records emitted during a call are published only if it succeeds: for a
// request, success means no error and a status below 400, and the caller
// gets the response only after Kafka has acknowledged every record. A
// permanent error answers 400 with its message, a retryable one 503 with
// Retry-After. For ticks, a retryable error retries the tick with backoff;
// a permanent one is logged and the schedule goes on.
//
// One value lives per instance, kept across calls. The runner keeps a small
// pool of instances per deployment for requests (so concurrent requests
// see different values) and one instance for ticks (so a generator can
// keep counters from tick to tick).
//
// A program registers either a producer or a consumer handler (package
// consumer), never both: importing this package links only the producer
// world's exports.
package producer

import (
	"example.invalid/ingesta/sdk/go/ingesta"
	"example.invalid/ingesta/sdk/go/internal/call"
)

// RequestHandler answers HTTP requests.
type RequestHandler interface {
	OnRequest(r *ingesta.Request) (ingesta.Response, error)
}

// TickHandler handles ticks of the deployment's schedule.
type TickHandler interface {
	OnTick(t ingesta.Tick) error
}

// Producer is a [RequestHandler], a [TickHandler], or both.
type Producer = any

var registered *call.Lazy

// Serve registers p as the component's producer. Call it once, from an
// init function. It panics if p has neither OnRequest nor OnTick, or if a
// producer is already registered.
func Serve(p Producer) {
	if problem := call.CheckProducer(p); problem != "" {
		panic("producer.Serve: " + problem)
	}
	ServeNew(func() (Producer, error) { return p, nil })
}

// ServeNew registers a constructor for the producer, which is made on the
// first call, when configuration can be read, and kept for the life of the
// instance. An error from newProducer fails that call and newProducer is
// tried again on the next one.
func ServeNew(newProducer func() (Producer, error)) {
	if registered != nil {
		panic("producer: a producer is already registered")
	}
	registered = call.NewLazy(newProducer, call.CheckProducer)
	install(request, tick)
}

func request(r *ingesta.Request) (ingesta.Response, error) {
	p, err := registered.Get()
	if err != nil {
		return ingesta.Response{}, err
	}
	return call.Request(p, r)
}

func tick(t ingesta.Tick) error {
	p, err := registered.Get()
	if err != nil {
		return err
	}
	return call.Tick(p, t)
}
