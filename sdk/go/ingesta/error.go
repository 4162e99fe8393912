package ingesta

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrorClass says how the runner treats a failed call.
type ErrorClass uint8

// Error classes.
const (
	// ClassRetryable: transient (a dependency was down, a rate limit); the
	// runner retries the batch with backoff.
	ClassRetryable ErrorClass = iota
	// ClassPermanent: the input can never succeed (malformed event, failed
	// validation); the record is dead-lettered or the deployment stops, per
	// its failure policy.
	ClassPermanent
)

// String returns "retryable" or "permanent".
func (c ErrorClass) String() string {
	if c == ClassRetryable {
		return "retryable"
	}
	return "permanent"
}

// Error is why a call failed: a class, a human-readable message and, when
// known, the index of the offending record within the batch.
//
// The record index lets the runner isolate a poison record without
// bisecting the batch; records before it are taken to be good. Errors are
// immutable: [Error.AtRecord] returns a copy.
type Error struct {
	class    ErrorClass
	message  string
	index    uint32
	hasIndex bool
}

// Retryable is a transient failure; the runner retries the batch.
func Retryable(message string) *Error { return NewError(ClassRetryable, message) }

// Retryablef is [Retryable] with a formatted message.
func Retryablef(format string, args ...any) *Error {
	return Retryable(fmt.Sprintf(format, args...))
}

// Permanent is a failure that retrying cannot fix.
func Permanent(message string) *Error { return NewError(ClassPermanent, message) }

// Permanentf is [Permanent] with a formatted message.
func Permanentf(format string, args ...any) *Error {
	return Permanent(fmt.Sprintf(format, args...))
}

// NewError is an error of the given class.
func NewError(class ErrorClass, message string) *Error {
	return &Error{class: class, message: message}
}

// AtRecord returns a copy of e that blames the record at index (its
// position in the batch, as given by [Record.Index]). An index outside
// 0..2^32-1 leaves the copy without one (the runner then bisects).
func (e *Error) AtRecord(index int) *Error {
	c := *e
	c.index, c.hasIndex = 0, false
	if index >= 0 && uint64(index) <= math.MaxUint32 {
		c.index, c.hasIndex = uint32(index), true
	}
	return &c
}

// Class is retry or give up.
func (e *Error) Class() ErrorClass { return e.class }

// IsRetryable reports whether the runner will retry the batch.
func (e *Error) IsRetryable() bool { return e.class == ClassRetryable }

// Message is the human-readable reason.
func (e *Error) Message() string { return e.message }

// RecordIndex is the index of the failed record in its batch, if known.
func (e *Error) RecordIndex() (int, bool) { return int(e.index), e.hasIndex }

// Error returns "<class>: <message>", followed by " (record <index>)" when
// the index is known.
func (e *Error) Error() string {
	s := e.class.String() + ": " + e.message
	if e.hasIndex {
		s += " (record " + strconv.FormatUint(uint64(e.index), 10) + ")"
	}
	return s
}

// AsError classifies any error the way the runner will see it: nil stays
// nil; an [*Error] (or an error wrapping one) keeps its class and record
// index, with the message of err itself when it wraps (where the wrapped
// error's text appears in it, its message takes its place, so that
// fmt.Errorf("loading rules: %w", Retryable("db down")) has the message
// "loading rules: db down", not "loading rules: retryable: db down"); any
// other error is
// permanent with err's text as the message. Guests have no I/O, so an
// unclassified error comes from parsing or validation, which no retry can
// fix; return [Retryable] for a failure worth retrying.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	if e, ok := err.(*Error); ok {
		return e
	}
	var inner *Error
	if errors.As(err, &inner) {
		c := *inner
		c.message = wrappedMessage(err.Error(), inner)
		return &c
	}
	return Permanent(err.Error())
}

// wrappedMessage is text, the message of an error wrapping inner, with the
// last occurrence of inner's own text ("<class>: <message> (record N)")
// replaced by its bare message.
func wrappedMessage(text string, inner *Error) string {
	full := inner.Error()
	i := strings.LastIndex(text, full)
	if i < 0 {
		return text
	}
	return text[:i] + inner.message + text[i+len(full):]
}
