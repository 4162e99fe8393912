//go:build !wasip1

package producer

import "example.invalid/ingesta/sdk/go/ingesta"

// Natively there is no host to call the producer: tests run it with
// package ingestatest.
func install(func(*ingesta.Request) (ingesta.Response, error), func(ingesta.Tick) error) {}
