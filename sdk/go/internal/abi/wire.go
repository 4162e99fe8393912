package abi

// Batch mirrors the WIT batch record.
type Batch struct {
	Topic     string
	Partition int32
	Data      []byte
	Records   []byte
	Headers   []byte
}

// Outbox mirrors the WIT outbox record.
type Outbox struct {
	Topics  []string
	Data    []byte
	Records []byte
	Headers []byte
}

// Error classes (WIT error-class).
const (
	Retryable uint8 = 0
	Permanent uint8 = 1
)

// HandlerError mirrors the WIT handler-error record.
type HandlerError struct {
	Class          uint8
	Message        string
	RecordIndex    uint32
	HasRecordIndex bool
}

// Log levels (WIT log.level).
const (
	LevelTrace uint8 = iota
	LevelDebug
	LevelInfo
	LevelWarn
	LevelError
)

// Emit refusal kinds (WIT emit-error cases).
const (
	TopicNotAllowed uint8 = iota
	Malformed
	LimitExceeded
)

// EmitError mirrors the WIT emit-error variant.
type EmitError struct {
	Kind   uint8
	Detail string
}
