// Package ingesta is the core of the Go SDK for ingesta stream handlers:
// the records a handler receives and everything it can do with them.
//
// It owns the data types ([Batch], [Record], [Request], [Response],
// [Tick]), publishing ([Emit], [EmitJSON], [Forward], [Message]), errors
// ([Retryable], [Permanent], [Error]), logging ([Log]) and JSON output that
// matches the Rust SDK byte for byte ([MarshalJSON], [Float]).
// Registering a handler is done by package consumer (records) or package
// producer (HTTP requests and ticks); configuration is read with package
// config; package ingestatest runs handlers natively in go test.
//
// A minimal handler:
//
//	package main
//
//	import (
//		"strings"
//
//		"example.invalid/ingesta/sdk/go/consumer"
//		"example.invalid/ingesta/sdk/go/ingesta"
//	)
//
//	type Upper struct{}
//
//	func (Upper) OnRecord(r ingesta.Record) error {
//		text, err := r.ValueString()
//		if err != nil {
//			return err
//		}
//		ingesta.Emit("shouty", r.Key(), strings.ToUpper(text))
//		return nil
//	}
//
//	func init() { consumer.Handle(Upper{}) }
//
//	func main() {}
//
// # Semantics
//
//   - Delivery is at-least-once: a batch may be handled again after a
//     failure or a restart, so handlers should tolerate redelivery.
//   - One handler value lives per partition instance and sees that
//     partition's batches in offset order. Its in-memory state is lost when
//     the instance is recycled (trap, rebalance, restart).
//   - Records passed to [Emit] and friends are published only if the whole
//     call succeeds; a failed call publishes nothing.
//   - [Retryable] errors make the runner retry the batch with backoff;
//     [Permanent] ones say the input can never succeed, so the runner
//     dead-letters the record or stops the deployment. Any other error is
//     treated as permanent. A panic traps the instance, which the runner
//     treats like a crash.
package ingesta
