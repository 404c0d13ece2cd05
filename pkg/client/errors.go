package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Errors a call can end with; test them with errors.Is.
var (
	// ErrInsufficientCredits: not enough available credits; nothing changed. The error is
	// an *InsufficientCreditsError carrying the balance.
	ErrInsufficientCredits = errors.New("insufficient credits")
	// ErrUnauthorized: the token was refused (missing, expired, or not for the audience
	// credits.gitread.dev).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: the ServiceAccount lacks the RBAC verb.
	ErrForbidden = errors.New("forbidden")
	// ErrInvalidRequest: the request was refused as malformed (400).
	ErrInvalidRequest = errors.New("invalid request")
	// ErrNotFound: no such reservation, or lot (Void), for this user.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the reservation was closed the other way, the user has too many open
	// holds or grants, the lot has nothing left to void, or the Idempotency-Key was used for
	// another request.
	ErrConflict = errors.New("conflict")
	// ErrExpired: the reservation expired.
	ErrExpired = errors.New("reservation expired")
	// ErrTooManyRequests: over the rate limit, after the retries.
	ErrTooManyRequests = errors.New("too many requests")
	// ErrServer: the API could not complete the call, after the retries; a change may or may
	// not have been applied. Retry it later with its key (IdempotencyKeyOf(err)) within the
	// key window, and it applies at most once.
	ErrServer = errors.New("server error")
)

// Error is a refusal by the API: its status and message; errors.Is matches the sentinel.
type Error struct {
	Status  int
	Message string
	kind    error
}

func (e *Error) Error() string { return fmt.Sprintf("credits API: %d %s", e.Status, e.Message) }

// Unwrap returns the sentinel error of the status.
func (e *Error) Unwrap() error { return e.kind }

// InsufficientCreditsError is ErrInsufficientCredits with the balance it was judged against.
type InsufficientCreditsError struct {
	Balance int64
}

func (e *InsufficientCreditsError) Error() string {
	return fmt.Sprintf("credits API: insufficient credits (%d available)", e.Balance)
}

// Is makes errors.Is(err, ErrInsufficientCredits) true.
func (e *InsufficientCreditsError) Is(target error) bool { return target == ErrInsufficientCredits }

var statusErrors = map[int]error{
	http.StatusBadRequest:      ErrInvalidRequest,
	http.StatusUnauthorized:    ErrUnauthorized,
	http.StatusForbidden:       ErrForbidden,
	http.StatusNotFound:        ErrNotFound,
	http.StatusConflict:        ErrConflict,
	http.StatusGone:            ErrExpired,
	http.StatusTooManyRequests: ErrTooManyRequests,
}

// apiError turns a refusal's status and body into a typed error.
func apiError(status int, body []byte) error {
	var payload struct {
		Error   string `json:"error"`
		Credits int64  `json:"credits"`
	}
	_ = json.Unmarshal(body, &payload)
	if status == http.StatusPaymentRequired {
		return &InsufficientCreditsError{Balance: payload.Credits}
	}
	kind, ok := statusErrors[status]
	if !ok {
		kind = ErrServer
	}
	return &Error{Status: status, Message: payload.Error, kind: kind}
}

// ChangeError is the error of every change that failed (Set, Consume, Grant, Reserve,
// Capture, CapturePart, Release, Void): what ended it, and the Idempotency-Key all its attempts
// were sent with. After ErrServer, a timeout or a cancelled context the change may or may
// not have been applied; sending it again WithIdempotencyKey(Key) within the API's key
// window applies it at most once (docs/go-client.md). errors.Is and errors.As see through
// it to the sentinel or typed error.
type ChangeError struct {
	Key string
	Err error
}

func (e *ChangeError) Error() string { return fmt.Sprintf("%v (Idempotency-Key %s)", e.Err, e.Key) }

// Unwrap returns what ended the change.
func (e *ChangeError) Unwrap() error { return e.Err }

// IdempotencyKeyOf returns the Idempotency-Key a failed change was sent with, "" when err
// is not the error of a change.
func IdempotencyKeyOf(err error) string {
	var c *ChangeError
	if errors.As(err, &c) {
		return c.Key
	}
	return ""
}
