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
// dropped. At most MaxLots lots have credits left.
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

// How a lot closed before it was spent (Lot.Closed, Removal.Why).
const (
	lotVoided  = "voided"
	lotExpired = "expired"
	// RemovedExpired and RemovedVoided are a Removal's Why.
	RemovedExpired = lotExpired
	RemovedVoided  = lotVoided
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
}

// LotCredits is what a hold took from one lot.
type LotCredits struct {
	Lot     string
	Credits int64
}

// Removal is credits a decision removed from a lot without anyone spending them.
type Removal struct {
	Lot     string
	Credits int64
	// Why is lotExpired or lotVoided.
	Why string
}

// plainBalance reports whether l is the balance lot with nothing to say but its credits.
func (l *Lot) plainBalance() bool {
	return l.ID == BalanceLotID && l.Source == SourceSet && l.Priority == DefaultPriority && l.ExpiresAt.IsZero() &&
		l.Closed == "" && l.Reason == "" && l.Reference == ""
}

// expired reports whether l's time is up at now.
func (l *Lot) expired(now time.Time) bool { return !l.ExpiresAt.IsZero() && !now.Before(l.ExpiresAt) }

// spendable reports whether l's remaining credits can be spent or held at now.
func (l *Lot) spendable(now time.Time) bool { return l.Closed == "" && !l.expired(now) }

// before reports whether a is spent before b. Lots granted within the same second compare
// equal: its callers sort stably, in the order the lots are stored, which is the order
// they were made in ("then the oldest"; their IDs are random and say nothing of it).
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
	return a.GrantedAt.Compare(b.GrantedAt)
}

func sumCredits(parts []LotCredits) int64 {
	var n int64
	for _, p := range parts {
		n += p.Credits
	}
	return n
}
