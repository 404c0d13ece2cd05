package account

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
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
	// OpExpire returns a hold whose time is up, or (without a ReservationID) removes what
	// is left of the lots whose time is up (the controller sends both).
	OpExpire OpKind = "expire"
	// OpVoid removes what is left of one lot (a grant undone; spent credits stay spent).
	OpVoid OpKind = "void"
	// KindPurchase is not an operation: it is how the history records a grant paid for
	// through Stripe Checkout (an OpGrant with Operation.Purchase).
	KindPurchase OpKind = "purchase"
	// OpRefund makes the purchase lot of Operation.Payment converge to Stripe's cumulative
	// refund of it (Operation.Charge): credits taken back in proportion (payments.go).
	OpRefund OpKind = "refund"
	// OpDispute records a dispute of Operation.Payment opened, won or lost
	// (Operation.Charge): an open one takes the lot's credits, a won one returns them.
	OpDispute OpKind = "dispute"
	// KindReinstate is not an operation: it is how the history records the credits a won
	// dispute returned.
	KindReinstate OpKind = "reinstate"
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
	// is recorded as a purchase of that session (history, Event) and its lot's source is
	// stripe. It is still a grant for its key (the grant ledger) and for who may make it.
	Purchase string
	// Terms, on a grant, are those of the lot it makes; on a void, Terms.ID names the lot.
	Terms LotTerms
	// Payment, on a purchase, names the Stripe PaymentIntent that paid for it (kept on its
	// lot); on a refund or a dispute, the payment whose lot it concerns.
	Payment string
	// Charge, on a refund or a dispute, is what Stripe says of the payment; on a purchase,
	// what earlier refunds and disputes of its payment said (early.go), applied with it.
	Charge ChargeState
}

// ChargeState is what a Stripe event says of a payment's charge: for a refund, its amount
// and the cumulative amount refunded (both in the smallest unit of the charge's currency:
// only their ratio matters); for a dispute, the dispute and its status.
type ChargeState struct {
	Amount, Refunded int64
	Dispute          string
	// DisputeStatus is DisputeOpen, DisputeWon or DisputeLost.
	DisputeStatus string
	// DisputeCreated is when Stripe created the dispute (unix seconds): of a payment's
	// disputes, the newest is the one its lot follows.
	DisputeCreated int64
}

// LotTerms are what a grant says of the lot it makes.
type LotTerms struct {
	// ID names the lot; for a grant, the store picks it (before any attempt, so that a
	// retry keeps it).
	ID string
	// ExpiresAt, when not zero, is when what is left of the lot is removed.
	ExpiresAt time.Time
	// Priority orders spending (lower first); nil: DefaultPriority.
	Priority *int32
	// Source is where the credits came from (SourceAPI when empty); Reference names what
	// granted them (a Checkout Session, a CreditGrant).
	Source, Reference string
	// Reason says why, in people's words.
	Reason string
}

// priority is the terms' priority, DefaultPriority unless said.
func (t LotTerms) priority() int32 {
	if t.Priority == nil {
		return DefaultPriority
	}
	return *t.Priority
}

// Sources of lots.
const (
	SourceAPI    = "api"
	SourceStripe = "stripe"
	SourceGitOps = "gitops"
	SourceSet    = "set"
)

// Bounds of lot terms.
const (
	DefaultPriority    = 50
	MaxPriority        = 100
	MaxReasonLength    = 256
	maxLotIDLength     = 64
	maxReferenceLength = 255
)

// Result is the outcome of an Operation.
type Result struct {
	// Credits is the available balance after the operation, or the current one when it
	// was refused.
	Credits int64
	// Replayed is true when an earlier application of the same request was returned.
	Replayed bool
	// ReservationID is the hold a reserve created.
	ReservationID string
	// LotID is the lot a grant made.
	LotID string
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
	// ErrTooManyLots: the user already has MaxLots lots with credits left.
	ErrTooManyLots = errors.New("too many lots with credits left")
	// ErrLotNotFound: no lot has that ID (or it was spent, voided or expired long ago).
	ErrLotNotFound = errors.New("lot not found")
	// ErrLotClosed: the lot has nothing left to void: spent, voided or expired.
	ErrLotClosed = errors.New("lot has nothing left")
	// ErrGrantExpired: a grant whose expiresAt is not after the time it is decided at (an
	// invalid operation). It is decided after the grant's Idempotency-Key is looked up, so
	// that a retry of a grant applied before, sent after its lot expired, answers as a
	// replay rather than as a refusal that says nothing was stored.
	ErrGrantExpired = fmt.Errorf("%w: expiresAt is not in the future", ErrInvalidOperation)
	// ErrPaymentNotFound: no lot names the payment of a refund or dispute.
	ErrPaymentNotFound = errors.New("no purchase lot names the payment")
	// ErrPaymentAmbiguous: more than one lot names it (an edit): which to take from is unknown.
	ErrPaymentAmbiguous = errors.New("more than one lot names the payment")
)

// MaxReservationTTL is the longest a hold may last.
const MaxReservationTTL = 24 * time.Hour

// valid checks what an operation asks for, before anything is read.
func (op Operation) valid() bool {
	inRange := op.Amount >= 0 && op.Amount <= MaxBalance
	if op.Purchase != "" && (op.Kind != OpGrant || !ValidReference(op.Purchase)) {
		return false
	}
	if op.Payment != "" && (op.Purchase == "" && op.Kind != OpRefund && op.Kind != OpDispute || !ValidReference(op.Payment)) {
		return false // a payment names a purchase's PaymentIntent
	}
	if op.Charge != (ChargeState{}) && op.Kind != OpRefund && op.Kind != OpDispute && !op.validEarlyCharge() {
		return false // a purchase may carry its payment's earlier refunds and disputes (early.go)
	}
	if op.Terms != (LotTerms{}) && !op.Terms.valid(op.Kind) {
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
	case OpRelease:
		return op.ReservationID != ""
	case OpExpire:
		return true // a hold, or the lots whose time is up
	case OpVoid:
		return op.Terms.ID != ""
	case OpRefund, OpDispute:
		return op.validPayment()
	}
	return false
}

// valid checks a grant's terms (and a void's lot).
func (t LotTerms) valid(kind OpKind) bool {
	okID := t.ID == "" || (len(t.ID) <= maxLotIDLength && idChars(t.ID))
	if kind == OpVoid {
		return okID && t == LotTerms{ID: t.ID}
	}
	okSource := t.Source == "" || t.Source == SourceAPI || t.Source == SourceStripe || t.Source == SourceGitOps
	_, okExpiry := StoredExpiry(t.ExpiresAt)
	return kind == OpGrant && okID && okSource && okExpiry && (t.Priority == nil || *t.Priority >= 0 && *t.Priority <= MaxPriority) &&
		ValidReason(t.Reason) && (t.Reference == "" || validLotReference(t.Reference))
}

// ValidReason reports whether a lot's reason can be stored and shown: at most
// MaxReasonLength characters (the CRD's maxLength counts characters, not bytes), valid
// UTF-8 and no control characters, which would garble `kubectl get` and logs.
func ValidReason(reason string) bool {
	if !utf8.ValidString(reason) || utf8.RuneCountInString(reason) > MaxReasonLength {
		return false
	}
	return strings.IndexFunc(reason, unicode.IsControl) < 0
}

// validLotReference accepts what ValidReference does and '.': a lot's reference names a
// Checkout Session or a CreditGrant, whose name may hold dots (a DNS subdomain). A lot's
// reference is never written into the history, whose separators ValidReference keeps out.
func validLotReference(ref string) bool {
	return ref != "" && len(ref) <= maxReferenceLength && idChars(strings.ReplaceAll(ref, ".", "_"))
}
