//go:build wasip1

package producer

import (
	"example.invalid/ingesta/sdk/go/ingesta"
	"example.invalid/ingesta/sdk/go/internal/guest"

	// Links the producer world's exports (source.handle-request and
	// source.handle-tick) into the program.
	_ "example.invalid/ingesta/sdk/go/internal/wit/export_source"
)

func install(request func(*ingesta.Request) (ingesta.Response, error), tick func(ingesta.Tick) error) {
	guest.OnRequest, guest.OnTick = request, tick
}
