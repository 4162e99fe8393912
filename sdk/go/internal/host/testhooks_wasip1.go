//go:build wasip1

package host

import "example.invalid/ingesta/sdk/go/internal/abi"

// The stand-in host's controls exist only natively; these keep package
// ingestatest compiling for wasip1.

const nativeOnly = "ingestatest runs natively only (go test without GOOS=wasip1)"

// SetConfig is native-only.
func SetConfig([][2]string) { panic(nativeOnly) }

// TakeEmitted is native-only.
func TakeEmitted() []abi.Outbox { panic(nativeOnly) }

// TakeLogs is native-only.
func TakeLogs() []LogLine { panic(nativeOnly) }

// DenyTopic is native-only.
func DenyTopic(string) { panic(nativeOnly) }
