package iso93

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns for a bad message
// matches one of them with errors.Is; none carries field values.
var (
	// ErrMalformed means the bytes do not follow Spec: a bad MTI or bitmap,
	// a field not defined in Spec, a bad length prefix, a truncated field, a
	// character outside the field's set, or bytes after the last field.
	ErrMalformed = errors.New("iso93: malformed message")
	// ErrMissingField means a field mandatory for the MTI is absent.
	ErrMissingField = errors.New("iso93: mandatory field missing")
	// ErrInvalidField means a field is well-formed for the codec but its
	// value breaks a protocol rule (wrong length for a KSN, a fingerprint
	// that is not 32 lower-case hex digits, a function code the MTI does not
	// allow, ...).
	ErrInvalidField = errors.New("iso93: invalid field value")
	// ErrUnknownMTI means the MTI is not one posgate uses.
	ErrUnknownMTI = errors.New("iso93: unknown MTI")
	// ErrMTIMismatch means a typed message was packed or unpacked with an
	// MTI that does not belong to its message class.
	ErrMTIMismatch = errors.New("iso93: MTI does not match the message type")
	// ErrResponseMismatch means a response does not answer the request it
	// was checked against (wrong MTI, STAN or function code).
	ErrResponseMismatch = errors.New("iso93: response does not match request")
)

// FieldError reports a problem with one data element. Field is the data
// element number (0 for the MTI, 1 for the bitmap); Reason says what is
// wrong without quoting the value; Err is one of the package's sentinel
// errors. A receiver answers a request that fails with a *FieldError with
// action code 904 (format error); see ActionCode.
type FieldError struct {
	Field  int
	Reason string
	Err    error
}

// Error returns "iso93: field N: reason".
func (e *FieldError) Error() string {
	return fmt.Sprintf("iso93: field %d: %s", e.Field, e.Reason)
}

// Unwrap returns the sentinel error classifying the problem.
func (e *FieldError) Unwrap() error { return e.Err }

// ActionCode returns the action code a receiver answers with: 904.
func (e *FieldError) ActionCode() ActionCode { return ActionFormatError }

func malformed(field int, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...), Err: ErrMalformed}
}

func missing(field int, mti string) *FieldError {
	return &FieldError{Field: field, Reason: "mandatory in " + mti + " but absent", Err: ErrMissingField}
}

func invalid(field int, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...), Err: ErrInvalidField}
}

// DeclineError reports a response whose action code does not approve the
// request. It is returned by NetworkCodec.CheckReply.
type DeclineError struct {
	MTI    string
	Action ActionCode
}

// Error returns "iso93: MTI answered with action code NNN (description)".
func (e *DeclineError) Error() string {
	return fmt.Sprintf("iso93: %s answered with action code %s (%s)", e.MTI, e.Action, e.Action.Description())
}
