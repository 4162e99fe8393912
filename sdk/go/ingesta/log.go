package ingesta

import (
	"fmt"

	"example.invalid/ingesta/sdk/go/internal/abi"
	"example.invalid/ingesta/sdk/go/internal/host"
)

// Level is the severity of a log line, from most to least verbose.
type Level uint8

// Log levels.
const (
	// LevelTrace is very detailed tracing.
	LevelTrace Level = iota
	// LevelDebug is diagnostics useful while developing.
	LevelDebug
	// LevelInfo is normal operational messages.
	LevelInfo
	// LevelWarn is something unexpected that the handler worked around.
	LevelWarn
	// LevelError is a failure.
	LevelError
)

// String returns "trace", "debug", "info", "warn" or "error".
func (l Level) String() string {
	switch l {
	case LevelTrace:
		return "trace"
	case LevelDebug:
		return "debug"
	case LevelInfo:
		return "info"
	case LevelWarn:
		return "warn"
	default:
		return "error"
	}
}

// Logger writes lines into the deployment's log stream; use [Log].
//
// The host bounds and rate-limits lines per deployment, so log per batch
// rather than per record. The f variants format only lines that pass
// [MaxLevel].
type Logger struct{}

// Log is the deployment's log stream:
//
//	ingesta.Log.Infof("loaded %d rules", len(rules))
//	ingesta.Log.Warn("skipping a record")
var Log Logger

var maxLevel = LevelTrace

// SetMaxLevel drops lines below level before they are formatted. Default:
// [LevelTrace] (everything goes to the host, which filters again).
func SetMaxLevel(level Level) { maxLevel = level }

// MaxLevel is the least severe level that is forwarded to the host.
func MaxLevel() Level { return maxLevel }

// Enabled reports whether a line at level would be forwarded.
func (Logger) Enabled(level Level) bool { return level >= maxLevel }

// Line writes one line at level.
func (l Logger) Line(level Level, message string) {
	if l.Enabled(level) {
		host.Log(wireLevel(level), message)
	}
}

// Linef writes one line at level, formatted as by [fmt.Sprintf] only if
// the level is enabled.
func (l Logger) Linef(level Level, format string, args ...any) {
	if l.Enabled(level) {
		host.Log(wireLevel(level), fmt.Sprintf(format, args...))
	}
}

// Trace writes a line at [LevelTrace].
func (l Logger) Trace(message string) { l.Line(LevelTrace, message) }

// Tracef writes a formatted line at [LevelTrace].
func (l Logger) Tracef(format string, args ...any) { l.Linef(LevelTrace, format, args...) }

// Debug writes a line at [LevelDebug].
func (l Logger) Debug(message string) { l.Line(LevelDebug, message) }

// Debugf writes a formatted line at [LevelDebug].
func (l Logger) Debugf(format string, args ...any) { l.Linef(LevelDebug, format, args...) }

// Info writes a line at [LevelInfo].
func (l Logger) Info(message string) { l.Line(LevelInfo, message) }

// Infof writes a formatted line at [LevelInfo].
func (l Logger) Infof(format string, args ...any) { l.Linef(LevelInfo, format, args...) }

// Warn writes a line at [LevelWarn].
func (l Logger) Warn(message string) { l.Line(LevelWarn, message) }

// Warnf writes a formatted line at [LevelWarn].
func (l Logger) Warnf(format string, args ...any) { l.Linef(LevelWarn, format, args...) }

// Error writes a line at [LevelError].
func (l Logger) Error(message string) { l.Line(LevelError, message) }

// Errorf writes a formatted line at [LevelError].
func (l Logger) Errorf(format string, args ...any) { l.Linef(LevelError, format, args...) }

func wireLevel(l Level) uint8 {
	switch l {
	case LevelTrace:
		return abi.LevelTrace
	case LevelDebug:
		return abi.LevelDebug
	case LevelInfo:
		return abi.LevelInfo
	case LevelWarn:
		return abi.LevelWarn
	default:
		return abi.LevelError
	}
}
