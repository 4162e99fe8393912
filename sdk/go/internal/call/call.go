// Package call runs one call of a handler or producer the way every export
// does: the user's code, then the single flush of its output when it
// succeeded, or the discarding of that output when it failed.
//
// It is shared by the wasm exports (through packages consumer and producer)
// and by package ingestatest, so native tests exercise the same path.
package call

import (
	"fmt"

	"example.invalid/ingesta/sdk/go/ingesta"
	"example.invalid/ingesta/sdk/go/internal/abi"
	"example.invalid/ingesta/sdk/go/internal/bridge"
	"example.invalid/ingesta/sdk/go/internal/outbox"
)

// The method sets the public packages document; declared here too, since
// interfaces match structurally.
type (
	recordHandler  interface{ OnRecord(ingesta.Record) error }
	batchHandler   interface{ OnBatch(ingesta.Batch) error }
	requestHandler interface {
		OnRequest(*ingesta.Request) (ingesta.Response, error)
	}
	tickHandler interface{ OnTick(ingesta.Tick) error }
)

// CheckHandler says what is wrong with h as a consumer handler, or "".
func CheckHandler(h any) string {
	switch h.(type) {
	case batchHandler, recordHandler:
		return ""
	case nil:
		return "the handler is nil"
	default:
		return fmt.Sprintf("%T has neither OnRecord(ingesta.Record) error nor OnBatch(ingesta.Batch) error", h)
	}
}

// CheckProducer says what is wrong with p as a producer, or "".
func CheckProducer(p any) string {
	switch p.(type) {
	case requestHandler, tickHandler:
		return ""
	case nil:
		return "the producer is nil"
	default:
		return fmt.Sprintf("%T has neither OnRequest(*ingesta.Request) (ingesta.Response, error) nor OnTick(ingesta.Tick) error", p)
	}
}

// Batch runs h on raw: OnBatch if h has it, else OnRecord for each record
// (stopping at the first error, marked with the record's index).
func Batch(h any, raw *abi.Batch) error {
	batch := bridge.NewBatch(raw).(ingesta.Batch)
	var err error
	switch h := h.(type) {
	case batchHandler:
		err = h.OnBatch(batch)
	case recordHandler:
		err = batch.ForEach(h.OnRecord)
	default:
		err = ingesta.Permanent(CheckHandler(h))
	}
	return End(err, true)
}

// Request runs p's OnRequest, or refuses the request if p has none.
func Request(p any, r *ingesta.Request) (ingesta.Response, error) {
	h, ok := p.(requestHandler)
	if !ok {
		return ingesta.Response{}, End(ingesta.Permanent(
			"this module does not accept HTTP requests (it has no OnRequest)"), false)
	}
	resp, err := h.OnRequest(r)
	// A status of 400 or more is a refusal: nothing of it is published.
	if err = End(err, resp.Status < 400); err != nil {
		return ingesta.Response{}, err
	}
	return resp, nil
}

// Tick runs p's OnTick, or refuses the tick if p has none.
func Tick(p any, t ingesta.Tick) error {
	h, ok := p.(tickHandler)
	if !ok {
		return End(ingesta.Permanent(
			"this module does not handle ticks (it has no OnTick); deploy it without a schedule"), false)
	}
	return End(h.OnTick(t), true)
}

// End ends a call: on success with publish set, it hands the buffered
// output to the host, and a refusal becomes the call's permanent error;
// otherwise it drops the output (the host publishes nothing of a failed
// call anyway). Every export ends this way.
func End(err error, publish bool) error {
	o := outbox.Current
	if err != nil {
		o.Discard()
		return ingesta.AsError(err)
	}
	if !publish {
		o.Discard()
		return nil
	}
	if refusal, refused := o.Finish(); refused {
		return ingesta.Permanent(refusal)
	}
	return nil
}

// ToWire converts a call's error to the WIT handler-error.
func ToWire(err error) abi.HandlerError {
	e := ingesta.AsError(err)
	w := abi.HandlerError{Class: abi.Permanent, Message: e.Message()}
	if e.IsRetryable() {
		w.Class = abi.Retryable
	}
	if i, ok := e.RecordIndex(); ok {
		w.RecordIndex, w.HasRecordIndex = uint32(i), true
	}
	return w
}

// Lazy holds the value a registered constructor makes on the first call
// and keeps for the life of the instance.
type Lazy struct {
	make  func() (any, error)
	check func(any) string
	value any
}

// NewLazy registers make; check validates what it returns.
func NewLazy(make func() (any, error), check func(any) string) *Lazy {
	return &Lazy{make: make, check: check}
}

// Get returns the value, making it on the first successful call. A failing
// constructor fails this call (publishing nothing) and is tried again on
// the next one.
func (l *Lazy) Get() (any, error) {
	if l.value != nil {
		return l.value, nil
	}
	v, err := l.make()
	if err != nil {
		return nil, End(err, false)
	}
	if problem := l.check(v); problem != "" {
		return nil, End(ingesta.Permanent(problem), false)
	}
	l.value = v
	return v, nil
}
