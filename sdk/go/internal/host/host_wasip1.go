//go:build wasip1

package host

import (
	"example.invalid/ingesta/sdk/go/internal/abi"
	"example.invalid/ingesta/sdk/go/internal/wit/ingesta_runtime_config"
	"example.invalid/ingesta/sdk/go/internal/wit/ingesta_runtime_emit"
	"example.invalid/ingesta/sdk/go/internal/wit/ingesta_runtime_log"
	"example.invalid/ingesta/sdk/go/internal/wit/ingesta_runtime_types"
)

// Emit hands o to the host's emit import; a refusal is returned.
func Emit(o *abi.Outbox) *abi.EmitError {
	result := ingesta_runtime_emit.Emit(ingesta_runtime_types.Outbox{
		Topics:  o.Topics,
		Data:    o.Data,
		Records: o.Records,
		Headers: o.Headers,
	})
	if !result.IsErr() {
		return nil
	}
	e := result.Err()
	switch e.Tag() {
	case ingesta_runtime_emit.EmitError_TopicNotAllowed:
		return &abi.EmitError{Kind: abi.TopicNotAllowed, Detail: e.TopicNotAllowed()}
	case ingesta_runtime_emit.EmitError_Malformed:
		return &abi.EmitError{Kind: abi.Malformed, Detail: e.Malformed()}
	default:
		return &abi.EmitError{Kind: abi.LimitExceeded, Detail: e.LimitExceeded()}
	}
}

// Log writes one line through the host's log import.
func Log(level uint8, message string) {
	ingesta_runtime_log.Log(level, message)
}

// ConfigEntries returns the deployment's configuration, sorted by key.
func ConfigEntries() [][2]string {
	entries := ingesta_runtime_config.Entries()
	out := make([][2]string, len(entries))
	for i, e := range entries {
		out[i] = [2]string{e.F0, e.F1}
	}
	return out
}

// ConfigGeneration changes whenever the configuration may have changed;
// a deployment's configuration never does.
func ConfigGeneration() uint64 { return 0 }
