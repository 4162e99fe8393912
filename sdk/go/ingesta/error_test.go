package ingesta_test

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"testing"

	"example.invalid/ingesta/sdk/go/ingesta"
)

func TestConstructorsSetClassAndMessage(t *testing.T) {
	e := ingesta.Retryable("db down")
	if e.Class() != ingesta.ClassRetryable || !e.IsRetryable() || e.Message() != "db down" {
		t.Errorf("%v", e)
	}
	if _, ok := e.RecordIndex(); ok {
		t.Error("index without AtRecord")
	}
	if ingesta.Permanentf("bad %d", 3).Class() != ingesta.ClassPermanent {
		t.Error("Permanentf is not permanent")
	}
	if ingesta.Retryablef("x %s", "y").Message() != "x y" {
		t.Error("Retryablef message")
	}
}

func TestErrorStringNamesClassAndRecord(t *testing.T) {
	if s := ingesta.Retryable("db down").Error(); s != "retryable: db down" {
		t.Error(s)
	}
	if s := ingesta.Permanent("bad price").AtRecord(7).Error(); s != "permanent: bad price (record 7)" {
		t.Error(s)
	}
}

func TestAtRecordCopies(t *testing.T) {
	base := ingesta.Permanent("x")
	marked := base.AtRecord(3)
	if _, ok := base.RecordIndex(); ok {
		t.Error("AtRecord changed the original")
	}
	if i, ok := marked.RecordIndex(); !ok || i != 3 {
		t.Error("no index")
	}
	if _, ok := marked.AtRecord(math.MaxUint32 + 1).RecordIndex(); ok {
		t.Error("huge index kept (it must be dropped, not truncated)")
	}
	if _, ok := marked.AtRecord(-1).RecordIndex(); ok {
		t.Error("negative index kept")
	}
}

func TestAsErrorClassifiesAnyError(t *testing.T) {
	if ingesta.AsError(nil) != nil {
		t.Error("nil is an error")
	}
	_, parseErr := strconv.Atoi("x")
	if e := ingesta.AsError(parseErr); e.IsRetryable() || e.Message() != parseErr.Error() {
		t.Errorf("plain error: %v", e)
	}
	wrapped := fmt.Errorf("loading rules: %w", ingesta.Retryable("db down").AtRecord(2))
	e := ingesta.AsError(wrapped)
	if !e.IsRetryable() || e.Message() != "loading rules: db down" {
		t.Errorf("wrapped: %v", e)
	}
	if e.Error() != "retryable: loading rules: db down (record 2)" {
		t.Errorf("wrapped text: %s", e.Error())
	}
	// Twice wrapped, and wrapped by an error whose text leaves it out.
	twice := fmt.Errorf("batch: %w", fmt.Errorf("rules: %w", ingesta.Permanent("bad rule")))
	if e := ingesta.AsError(twice); e.Message() != "batch: rules: bad rule" {
		t.Errorf("twice wrapped: %v", e)
	}
	opaque := opaqueError{ingesta.Retryable("db down")}
	if e := ingesta.AsError(opaque); !e.IsRetryable() || e.Message() != "lookup failed" {
		t.Errorf("opaque: %v", e)
	}
	if i, _ := e.RecordIndex(); i != 2 {
		t.Error("wrapped index lost")
	}
	var target *ingesta.Error
	if !errors.As(wrapped, &target) {
		t.Error("errors.As")
	}
}

// opaqueError wraps an *ingesta.Error without repeating its text.
type opaqueError struct{ inner error }

func (e opaqueError) Error() string { return "lookup failed" }
func (e opaqueError) Unwrap() error { return e.inner }
