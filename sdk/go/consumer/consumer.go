// Package consumer turns a Go value into the handler of an ingesta
// consumer component (WIT world consumer): it owns registering the handler
// and calling it with each batch.
//
// Register the handler once, from an init function of package main:
//
//	type Upper struct{}
//
//	func (Upper) OnRecord(r ingesta.Record) error { ... }
//
//	func init() { consumer.Handle(Upper{}) }
//
//	func main() {}
//
// A handler has OnRecord ([RecordHandler]) for record-at-a-time logic, or
// OnBatch ([BatchHandler]) to see the whole batch (to aggregate, or to
// skip per-record work). If it has both, OnBatch is called.
//
// One handler value lives per partition instance and sees that partition's
// batches in offset order, so its fields can carry state from batch to
// batch. That state is lost when the instance is recycled (after a trap, a
// rebalance or a restart), and batches are delivered at least once, so
// treat it as a cache rather than a source of truth.
//
// A program registers either a consumer handler or a producer (package
// producer), never both: importing this package links only the consumer
// world's export.
package consumer

import (
	"example.invalid/ingesta/sdk/go/ingesta"
	"example.invalid/ingesta/sdk/go/internal/abi"
	"example.invalid/ingesta/sdk/go/internal/call"
)

// RecordHandler handles one record at a time.
//
// An error fails the whole batch: nothing emitted during the call is
// published, and the error is marked with the record's index (see
// [ingesta.Error.AtRecord]) so the runner can isolate that record.
type RecordHandler interface {
	OnRecord(r ingesta.Record) error
}

// BatchHandler handles a whole batch. To blame a record, return an error
// made with [ingesta.Record.Error] or marked with
// [ingesta.Error.AtRecord]; [ingesta.Batch.ForEach] does it for you.
type BatchHandler interface {
	OnBatch(b ingesta.Batch) error
}

// Handler is a [RecordHandler], a [BatchHandler], or both (OnBatch is
// then the one called).
type Handler = any

// RecordFunc adapts a function to a [RecordHandler].
type RecordFunc func(r ingesta.Record) error

// OnRecord calls f(r).
func (f RecordFunc) OnRecord(r ingesta.Record) error { return f(r) }

// BatchFunc adapts a function to a [BatchHandler].
type BatchFunc func(b ingesta.Batch) error

// OnBatch calls f(b).
func (f BatchFunc) OnBatch(b ingesta.Batch) error { return f(b) }

var registered *call.Lazy

// Handle registers h as the component's handler. Call it once, from an
// init function. It panics if h has neither OnRecord nor OnBatch, or if a
// handler is already registered.
//
// h is kept for the life of the instance. It exists before the first
// call, when configuration cannot be read yet: read configuration in
// OnRecord or OnBatch (once, keeping it in a field), or use [HandleNew].
func Handle(h Handler) {
	if problem := call.CheckHandler(h); problem != "" {
		panic("consumer.Handle: " + problem)
	}
	HandleNew(func() (Handler, error) { return h, nil })
}

// HandleFunc registers f as a per-record handler, like Handle.
func HandleFunc(f func(r ingesta.Record) error) {
	Handle(RecordFunc(f))
}

// HandleNew registers a constructor for the handler, which is made on the
// first call, when configuration can be read, and kept for the life of the
// instance. An error from newHandler fails that call (publishing nothing)
// and newHandler is tried again on the next one. Call HandleNew once, from
// an init function.
func HandleNew(newHandler func() (Handler, error)) {
	if registered != nil {
		panic("consumer: a handler is already registered")
	}
	registered = call.NewLazy(newHandler, call.CheckHandler)
	install(serve)
}

// serve is one call of the registered handler.
func serve(raw *abi.Batch) error {
	h, err := registered.Get()
	if err != nil {
		return err
	}
	return call.Batch(h, raw)
}
