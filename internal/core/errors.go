package core

import (
	"errors"
	"fmt"
)

// Error kinds. Every error that crosses a layer boundary wraps one of these so
// callers can branch with errors.Is; the API maps each kind to one HTTP status.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict means the request is valid but the current state forbids it,
	// for example deleting a version that still carries traffic.
	ErrConflict     = errors.New("conflict")
	ErrInvalid      = errors.New("invalid")
	ErrUnauthorized = errors.New("unauthorized")
	ErrUnavailable  = errors.New("unavailable")
	// ErrTooLarge means an upload is over a configured limit.
	ErrTooLarge = errors.New("too large")
	// ErrPreconditionFailed means a conditional write found the state moved
	// on since the caller read it (an If-Match that names another traffic
	// entry); the write changed nothing.
	ErrPreconditionFailed = errors.New("precondition failed")
)

// Error is an error of a known kind with a message that is safe to show to the
// user and, for invalid input, the name of the offending field.
type Error struct {
	Kind    error  // one of the Err* kinds above
	Field   string // the offending field (JSON name), for ErrInvalid
	Message string
}

func (e *Error) Error() string { return e.Message }

// Unwrap makes errors.Is(err, ErrInvalid) and friends work.
func (e *Error) Unwrap() error { return e.Kind }

// Invalidf reports invalid input in field.
func Invalidf(field, format string, args ...any) error {
	return &Error{Kind: ErrInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotFoundf reports a missing resource.
func NotFoundf(format string, args ...any) error {
	return &Error{Kind: ErrNotFound, Message: fmt.Sprintf(format, args...)}
}

// AlreadyExistsf reports a resource that exists already.
func AlreadyExistsf(format string, args ...any) error {
	return &Error{Kind: ErrAlreadyExists, Message: fmt.Sprintf(format, args...)}
}

// Conflictf reports a request that the current state forbids.
func Conflictf(format string, args ...any) error {
	return &Error{Kind: ErrConflict, Message: fmt.Sprintf(format, args...)}
}

// Unavailablef reports a dependency that cannot serve the request now.
func Unavailablef(format string, args ...any) error {
	return &Error{Kind: ErrUnavailable, Message: fmt.Sprintf(format, args...)}
}

// TooLargef reports an upload over a limit.
func TooLargef(format string, args ...any) error {
	return &Error{Kind: ErrTooLarge, Message: fmt.Sprintf(format, args...)}
}

// PreconditionFailedf reports a conditional write whose condition no longer
// holds.
func PreconditionFailedf(format string, args ...any) error {
	return &Error{Kind: ErrPreconditionFailed, Message: fmt.Sprintf(format, args...)}
}

// Unauthorizedf reports a missing or wrong credential.
func Unauthorizedf(format string, args ...any) error {
	return &Error{Kind: ErrUnauthorized, Message: fmt.Sprintf(format, args...)}
}

// ErrorField returns the field named by an ErrInvalid error, or "".
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}
