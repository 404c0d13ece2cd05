package account

import (
	"cmp"
	"time"
)

// A user's credits are lots: each grant is one, with its own expiry and priority, spent in
// its turn (the lowest priority value first, then the soonest expiry, never-expiring last,
// then the oldest: Stripe's credit grants' order). What is not a grant (a balance set
// through the API or by an edit of spec.credits, or one from before lots) is the balance
// lot, BalanceLotID, which never expires. Lots with nothing left, spent or held, are
// dropped. At most MaxLots grants have credits left; the balance lot is not one of them,
// so that a set, a purchase at the bound and a hold's return always have a lot to go to.
const (
	BalanceLotID = "balance"
	MaxLots      = 100
	// MaxHoldLots bounds the lots all open holds took credits from, together, so that a
	// record's size stays bounded however fragmented its lots.
	MaxHoldLots = 2 * MaxOpenHolds
	// MaxClosedLots bounds the voided and expired lots kept (with nothing left) so that a
	// second void of one is told it is closed rather than unknown.
	MaxClosedLots = 20
)

// How a lot closed before it was spent (Lot.Closed, LotChange.Why).
const (
	lotVoided  = "voided"
	lotExpired = "expired"
)

// What a LotChange is (its Why).
const (
	// RemovedExpired and RemovedVoided: what was left of the lot was removed.
	RemovedExpired = lotExpired
	RemovedVoided  = lotVoided
	// Refunded: a Stripe refund of the lot's payment took credits back (and some may have
	// been unrecoverable: spent).
	Refunded = "refunded"
	// Disputed: a dispute of the lot's payment took credits.
	Disputed = "disputed"
	// Reinstated: a won dispute returned what it took.
	Reinstated = "reinstated"
	// LostDispute: the dispute was lost; what it took stays taken.
	LostDispute = "dispute lost"
)

// Lot is one grant of credits and what is left of it.
type Lot struct {
	ID string
	// Credits is how many were granted; Remaining how many are neither spent nor held.
	Credits, Remaining int64
	// ExpiresAt, when not zero, is when what is left is removed.
	ExpiresAt time.Time
	Priority  int32
	Source    string
	Reference string
	Reason    string
	GrantedAt time.Time
	// Closed is lotVoided or lotExpired once the lot was voided or has expired (at
	// ClosedAt): credits a hold returns to it are removed rather than made available again.
	Closed   string
	ClosedAt time.Time
	// Payment names the Stripe PaymentIntent that paid for a purchase lot; Refund and
	// Dispute are what refunds and a dispute of it took back (payments.go).
	Payment string
	Refund  Refund
	Dispute Dispute
}

// LotCredits is what a hold took from one lot.
type LotCredits struct {
	Lot     string
	Credits int64
}

// LotChange is credits a decision removed from a lot without anyone spending them, or
// returned to it (a won dispute), for the history, Events and metrics.
type LotChange struct {
	Lot     string
	Credits int64
	// Why is RemovedExpired, RemovedVoided, Refunded, Disputed, Reinstated or LostDispute.
	Why string
	// Reference names the lot's purchase (its Checkout Session) for refunds and disputes.
	Reference string
	// Unrecoverable, for a refund, is the credits it should have taken back that had been
	// spent already.
	Unrecoverable int64
}

// plainBalance reports whether l is the balance lot with nothing to say but its credits.
func (l *Lot) plainBalance() bool {
	return l.ID == BalanceLotID && l.Source == SourceSet && l.Priority == DefaultPriority && l.ExpiresAt.IsZero() &&
		l.Closed == "" && l.Reason == "" && l.Reference == "" && l.Payment == "" && l.Refund == Refund{} && l.Dispute == Dispute{}
}

// expired reports whether l's time is up at now.
func (l *Lot) expired(now time.Time) bool { return !l.ExpiresAt.IsZero() && !now.Before(l.ExpiresAt) }

// spendable reports whether l's remaining credits can be spent or held at now.
func (l *Lot) spendable(now time.Time) bool { return l.Closed == "" && !l.expired(now) }

// before reports whether a is spent before b.
func before(a, b *Lot) int {
	if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
		return c
	}
	switch {
	case a.ExpiresAt.IsZero() != b.ExpiresAt.IsZero():
		if a.ExpiresAt.IsZero() {
			return 1 // never-expiring last
		}
		return -1
	case !a.ExpiresAt.Equal(b.ExpiresAt):
		return a.ExpiresAt.Compare(b.ExpiresAt)
	}
	if c := a.GrantedAt.Compare(b.GrantedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

func sumCredits(parts []LotCredits) int64 {
	var n int64
	for _, p := range parts {
		n += p.Credits
	}
	return n
}
