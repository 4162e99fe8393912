//go:build !wasip1

package host

import (
	"slices"
	"strings"
	"sync"

	"example.invalid/ingesta/sdk/go/internal/abi"
)

// The stand-in host's state. Guests are single-threaded; the mutex only
// keeps the race detector quiet if a test misuses goroutines.
var (
	mu         sync.Mutex
	config     [][2]string
	generation uint64
	emitted    []abi.Outbox
	logs       []LogLine
	denyTopic  string
)

// Emit records a copy of o, or refuses it if it names the denied topic.
func Emit(o *abi.Outbox) *abi.EmitError {
	mu.Lock()
	defer mu.Unlock()
	if denyTopic != "" && slices.Contains(o.Topics, denyTopic) {
		return &abi.EmitError{Kind: abi.TopicNotAllowed, Detail: denyTopic}
	}
	emitted = append(emitted, abi.Outbox{
		Topics:  slices.Clone(o.Topics),
		Data:    slices.Clone(o.Data),
		Records: slices.Clone(o.Records),
		Headers: slices.Clone(o.Headers),
	})
	return nil
}

// Log records one line.
func Log(level uint8, message string) {
	mu.Lock()
	defer mu.Unlock()
	logs = append(logs, LogLine{level, strings.Clone(message)})
}

// ConfigEntries returns the configuration set by SetConfig, sorted by key.
func ConfigEntries() [][2]string {
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(config)
}

// ConfigGeneration changes whenever SetConfig is called, so cached
// configuration is fetched again.
func ConfigGeneration() uint64 {
	mu.Lock()
	defer mu.Unlock()
	return generation
}

// SetConfig replaces the configuration.
func SetConfig(entries [][2]string) {
	mu.Lock()
	defer mu.Unlock()
	config = slices.Clone(entries)
	slices.SortStableFunc(config, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	generation++
}

// TakeEmitted returns and forgets the outboxes emitted so far.
func TakeEmitted() []abi.Outbox {
	mu.Lock()
	defer mu.Unlock()
	out := emitted
	emitted = nil
	return out
}

// TakeLogs returns and forgets the lines logged so far.
func TakeLogs() []LogLine {
	mu.Lock()
	defer mu.Unlock()
	out := logs
	logs = nil
	return out
}

// DenyTopic makes Emit refuse outboxes naming topic, as the real host does
// for a topic the deployment is not granted; "" lifts it.
func DenyTopic(topic string) {
	mu.Lock()
	defer mu.Unlock()
	denyTopic = topic
}
