//go:build wasip1

// Package guest adapts the generated export functions (internal/wit/
// export_handler and export_source, which call this package under the
// names wit-bindgen gives a user-written export package) to the SDK's
// dispatch: it converts the generated types and calls the hooks that
// packages consumer and producer install when a handler is registered.
package guest

import (
	"example.invalid/ingesta/sdk/go/ingesta"
	"example.invalid/ingesta/sdk/go/internal/abi"
	"example.invalid/ingesta/sdk/go/internal/call"
	"example.invalid/ingesta/sdk/go/internal/wit/ingesta_runtime_source"
	"example.invalid/ingesta/sdk/go/internal/wit/ingesta_runtime_types"
	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

// Hooks installed by packages consumer and producer.
var (
	// OnBatch handles one batch.
	OnBatch func(*abi.Batch) error
	// OnRequest handles one HTTP request.
	OnRequest func(*ingesta.Request) (ingesta.Response, error)
	// OnTick handles one tick.
	OnTick func(ingesta.Tick) error
)

const unregistered = "no handler is registered: call consumer.Handle or producer.Serve from an init function"

// Handle is the body of the exported handler.handle.
func Handle(b ingesta_runtime_types.Batch) witTypes.Result[witTypes.Unit, ingesta_runtime_types.HandlerError] {
	var err error
	if OnBatch == nil {
		err = call.End(ingesta.Permanent(unregistered), false)
	} else {
		err = OnBatch(&abi.Batch{
			Topic:     b.Topic,
			Partition: b.Partition,
			Data:      b.Data,
			Records:   b.Records,
			Headers:   b.Headers,
		})
	}
	if err != nil {
		return witTypes.Err[witTypes.Unit](handlerError(err))
	}
	return witTypes.Ok[witTypes.Unit, ingesta_runtime_types.HandlerError](witTypes.Unit{})
}

// HandleRequest is the body of the exported source.handle-request.
func HandleRequest(r ingesta_runtime_source.Request) witTypes.Result[ingesta_runtime_source.Response, ingesta_runtime_types.HandlerError] {
	if OnRequest == nil {
		return witTypes.Err[ingesta_runtime_source.Response](
			handlerError(call.End(ingesta.Permanent(unregistered), false)))
	}
	target := r.Path
	if r.Query != "" {
		target += "?" + r.Query
	}
	req := ingesta.NewRequest(r.Method, target, r.Body)
	for _, h := range r.Headers {
		req.WithHeader(h.F0, h.F1)
	}
	resp, err := OnRequest(req)
	if err != nil {
		return witTypes.Err[ingesta_runtime_source.Response](handlerError(err))
	}
	headers := make([]witTypes.Tuple2[string, string], len(resp.Headers))
	for i, h := range resp.Headers {
		headers[i] = witTypes.Tuple2[string, string]{F0: h[0], F1: h[1]}
	}
	return witTypes.Ok[ingesta_runtime_source.Response, ingesta_runtime_types.HandlerError](
		ingesta_runtime_source.Response{Status: resp.Status, Headers: headers, Body: resp.Body})
}

// HandleTick is the body of the exported source.handle-tick.
func HandleTick(t ingesta_runtime_source.Tick) witTypes.Result[witTypes.Unit, ingesta_runtime_types.HandlerError] {
	var err error
	if OnTick == nil {
		err = call.End(ingesta.Permanent(unregistered), false)
	} else {
		err = OnTick(ingesta.Tick{Seq: t.Seq, ScheduledMs: t.ScheduledMs, IntervalMs: t.IntervalMs})
	}
	if err != nil {
		return witTypes.Err[witTypes.Unit](handlerError(err))
	}
	return witTypes.Ok[witTypes.Unit, ingesta_runtime_types.HandlerError](witTypes.Unit{})
}

func handlerError(err error) ingesta_runtime_types.HandlerError {
	w := call.ToWire(err)
	index := witTypes.None[uint32]()
	if w.HasRecordIndex {
		index = witTypes.Some(w.RecordIndex)
	}
	return ingesta_runtime_types.HandlerError{Class: w.Class, Message: w.Message, RecordIndex: index}
}
