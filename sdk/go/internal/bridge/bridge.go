// Package bridge lets the SDK's own packages reach package ingesta's
// unexported constructors without making them public API.
package bridge

import "example.invalid/ingesta/sdk/go/internal/abi"

// NewBatch wraps a wire batch as an ingesta.Batch (returned as any to avoid
// an import cycle). Package ingesta sets it in its init function.
var NewBatch func(raw *abi.Batch) any
