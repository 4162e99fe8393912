//go:build !wasip1

package consumer

import "example.invalid/ingesta/sdk/go/internal/abi"

// Natively there is no host to call the handler: tests run it with
// package ingestatest.
func install(func(*abi.Batch) error) {}
