package account

import (
	"errors"
	"time"
)

// OpKind is what an Operation does to a balance.
type OpKind string

// Operation kinds.
const (
	OpSet     OpKind = "set"
	OpConsume OpKind = "consume"
	OpGrant   OpKind = "grant"
	// OpReserve holds credits out of the available balance until they are captured,
	// released or expire.
	OpReserve OpKind = "reserve"
	// OpCapture spends some or all of a hold and returns the rest.
	OpCapture OpKind = "capture"
	// OpRelease returns a whole hold.
	OpRelease OpKind = "release"
	// OpExpire returns a hold whose time is up (the controller sends it).
	OpExpire OpKind = "expire"
	// KindPurchase is not an operation: it is how the history records a grant paid for
	// through Stripe Checkout (an OpGrant with Operation.Purchase).
	KindPurchase OpKind = "purchase"
)

// Operation is one change to a user's balance.
type Operation struct {
	Kind OpKind
	// Amount is the credits to set, consume, grant, reserve or capture.
	Amount int64
	// CaptureAll captures the whole hold, whatever Amount says.
	CaptureAll bool
	// IdempotencyKey, when set, makes a repeat of the same operation a no-op that returns
	// the original result.
	IdempotencyKey string
	// ReservationID names the hold to capture, release or expire; for a reserve, the store
	// picks it.
	ReservationID string
	// TTL is how long a new hold lasts before it expires.
	TTL time.Duration
	// Purchase, on a grant, names the Stripe Checkout Session that paid for it: the grant
	// is recorded as a purchase of that session (history, Event). It is still a grant for
	// its key (the grant ledger) and for who may make it.
	Purchase string
}

// Result is the outcome of an Operation.
type Result struct {
	// Credits is the available balance after the operation, or the current one when it
	// was refused.
	Credits int64
	// Replayed is true when an earlier application of the same request was returned.
	Replayed bool
	// ReservationID is the hold a reserve created.
	ReservationID string
}

// Errors an Operation can be refused with; nothing changes when they are returned.
var (
	ErrInsufficientCredits  = errors.New("insufficient credits")
	ErrIdempotencyKeyReused = errors.New("idempotency key reused with a different request")
	ErrBalanceOverflow      = errors.New("balance would exceed the maximum")
	ErrInvalidOperation     = errors.New("invalid operation")
	ErrInvalidUserID        = errors.New("invalid user ID")
	ErrTooManyReservations  = errors.New("too many open reservations")
	ErrReservationNotFound  = errors.New("reservation not found")
	ErrReservationCaptured  = errors.New("reservation already captured")
	ErrReservationReleased  = errors.New("reservation already released")
	ErrReservationExpired   = errors.New("reservation expired")
)

// MaxReservationTTL is the longest a hold may last.
const MaxReservationTTL = 24 * time.Hour

// valid checks what an operation asks for, before anything is read.
func (op Operation) valid() bool {
	inRange := op.Amount >= 0 && op.Amount <= MaxBalance
	if op.Purchase != "" && (op.Kind != OpGrant || !ValidReference(op.Purchase)) {
		return false
	}
	switch op.Kind {
	case OpSet:
		return inRange
	case OpConsume, OpGrant:
		return inRange && op.Amount > 0
	case OpReserve:
		return inRange && op.Amount > 0 && op.TTL >= time.Second && op.TTL <= MaxReservationTTL && op.ReservationID != ""
	case OpCapture:
		return (op.CaptureAll || inRange) && op.ReservationID != ""
	case OpRelease, OpExpire:
		return op.ReservationID != ""
	}
	return false
}
