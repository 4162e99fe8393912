//go:build wasip1

package consumer

import (
	"example.invalid/ingesta/sdk/go/internal/abi"
	"example.invalid/ingesta/sdk/go/internal/guest"

	// Links the consumer world's export (handler.handle) into the program.
	_ "example.invalid/ingesta/sdk/go/internal/wit/export_handler"
)

func install(serve func(*abi.Batch) error) { guest.OnBatch = serve }
