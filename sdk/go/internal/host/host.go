// Package host is the only code that calls the WIT imports (emit, log,
// config).
//
// Built for wasip1, its functions call the generated import bindings.
// Elsewhere they talk to an in-memory stand-in, so the rest of the SDK (and
// handlers built on it) can be exercised by native go test; package
// ingestatest drives that stand-in.
package host

import "example.invalid/ingesta/sdk/go/internal/abi"

// Refused turns a refused emit into the message of the call's (permanent)
// error: the host fails the call regardless, and no retry can change the
// deployment's grants or limits.
func Refused(e abi.EmitError) string {
	switch e.Kind {
	case abi.TopicNotAllowed:
		return "emit refused: topic " + e.Detail + " is not granted to this deployment"
	case abi.Malformed:
		return "emit refused: malformed outbox: " + e.Detail
	default:
		return "emit refused: output limit exceeded: " + e.Detail
	}
}

// LogLine is one line written through Log (recorded by the stand-in host).
type LogLine struct {
	Level   uint8
	Message string
}
