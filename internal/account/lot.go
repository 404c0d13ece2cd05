package account

import (
	"cmp"
	"time"
)

// A user's credits are lots: each grant is one, with its own expiry and priority, spent in
// its turn (the lowest priority value first, then the soonest expiry, never-expiring last,
// then the oldest: Stripe's credit grants' order; among lots granted in the same second,
// the one granted first, which is the one earlier in the list). What is not a grant (a
// balance set through the API or by an edit of spec.credits, or one from before lots) is
// the balance lot, BalanceLotID, which never expires.
//
// Bounds: a grant finds at most MaxLots other grants with credits left or held (live
// lots); the balance lot is not one of them, so that a set, a purchase and a hold's return
// always have a lot to go to. A grant with nothing left, spent or held, is closed (spent,
// voided, expired) and kept, so that a void of it is told it has nothing left (409) rather
// than that it is unknown; the last MaxClosedLots are kept. A closed lot whose credits a
// hold still has is live: it is needed to remove them when the hold returns them. A Stripe
// purchase spent to nothing is kept besides those for its refund window (MaxKeptPurchases
// of them), so that a refund or dispute of it finds it and records what it cannot take
// back. So a record holds at most MaxLots+MaxClosedLots+MaxKeptPurchases grants and the
// balance lot (the CRD's maxItems).
const (
	BalanceLotID = "balance"
	MaxLots      = 100
	// MaxHoldLots bounds the lots all open holds took credits from, together, so that a
	// record's size stays bounded however fragmented its lots.
	MaxHoldLots = 2 * MaxOpenHolds
	// MaxClosedLots bounds the closed lots kept with nothing held.
	MaxClosedLots = 20
	// MaxStoredLots bounds the lots of a record: MaxLots live, MaxClosedLots closed,
	// MaxKeptPurchases spent purchases kept for their refunds (payments.go), and the balance
	// lot.
	MaxStoredLots = MaxLots + MaxClosedLots + MaxKeptPurchases + 1
)

// How a lot closed (Lot.Closed; LotChange.Why for the first two).
const (
	lotVoided  = "voided"
	lotExpired = "expired"
	lotSpent   = "spent"
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
	// ClosedAt): credits a hold returns to it are removed rather than made available again;
	// lotSpent once it was spent to nothing.
	Closed   string
	ClosedAt time.Time
	// Payment names the Stripe PaymentIntent that paid for a purchase lot; Refund and
	// Dispute are what refunds and a dispute of it took back (payments.go).
	Payment string
	Refund  Refund
	Dispute Dispute
	// Removed, on a purchase lot, is how many of its credits were removed unspent: what a
	// void or its expiry removed, what holds returned to it after, and what a dispute won
	// after either could not return. A refund counts them as gone already rather than as
	// spent (payments.go).
	Removed int64
}

// remove records n credits of l removed unspent (voided, expired): a refund of its
// purchase finds them gone already. Only a purchase lot can be refunded, so only one
// keeps the count.
func (l *Lot) remove(n int64) {
	if l.Payment != "" {
		l.Removed += n
	}
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
	// FromDispute, for a refund, is how many of Credits it took from what the lot's
	// dispute held: off the balance already, so the balance does not move for them.
	FromDispute int64
	// Removed, for a refund, is the credits of its share that had been removed already
	// (voided, expired): neither taken by it nor unrecoverable.
	Removed int64
}

// plainBalance reports whether l is the balance lot with nothing to say but its credits.
func (l *Lot) plainBalance() bool {
	return l.ID == BalanceLotID && l.Source == SourceSet && l.Priority == DefaultPriority && l.ExpiresAt.IsZero() &&
		l.Closed == "" && l.Reason == "" && l.Reference == "" && l.Payment == "" && l.Refund == Refund{} && l.Dispute == Dispute{} && l.Removed == 0
}

// expired reports whether l's time is up at now.
func (l *Lot) expired(now time.Time) bool { return !l.ExpiresAt.IsZero() && !now.Before(l.ExpiresAt) }

// spendable reports whether l's remaining credits can be spent or held at now.
func (l *Lot) spendable(now time.Time) bool { return l.Closed == "" && !l.expired(now) }

// before orders a and b as they are spent; lots granted in the same second are equal, and
// keep the order of the list (a stable sort), which is the order they were granted in.
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
	return a.GrantedAt.Truncate(time.Second).Compare(b.GrantedAt.Truncate(time.Second))
}

// latestExpiry is the latest expiry a record can hold: the apiserver's date-time is
// RFC 3339, whose years end at 9999 (in UTC, as a record writes it).
var latestExpiry = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// StoredExpiry is the expiry a record keeps for t: t rounded up to the whole second (a
// record keeps seconds; rounded down, a lot or hold would end before its time), and false
// when that is past what a record can hold.
func StoredExpiry(t time.Time) (time.Time, bool) {
	if rounded := t.Truncate(time.Second); rounded.Before(t) {
		t = rounded.Add(time.Second)
	}
	return t, !t.After(latestExpiry)
}

func sumCredits(parts []LotCredits) int64 {
	var n int64
	for _, p := range parts {
		n += p.Credits
	}
	return n
}
