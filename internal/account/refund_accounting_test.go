package account

import (
	"fmt"
	"testing"
	"time"
)

// refundChange is the one Refunded change a decision on a made, failing otherwise.
func refundChange(t *testing.T, next Account) LotChange {
	t.Helper()
	var found []LotChange
	for _, c := range next.Changes() {
		if c.Why == Refunded {
			found = append(found, c)
		}
	}
	if len(found) != 1 {
		t.Fatalf("refund changes %+v, want one", next.Changes())
	}
	return found[0]
}

// TestRefundOfAVoidedPurchaseCallsOnlyWhatWasSpentUnrecoverable: an operator voided what
// was left of a purchase (7 of its 10 credits; the user spent 3), then Stripe refunded it
// all. The 7 voided credits were never the user's to spend: they are gone already, and
// cover the refund. Only the 3 spent are unrecoverable (the Warning and the metric); the
// refund takes nothing (its history entry says 0 credits, 3 unrecoverable).
func TestRefundOfAVoidedPurchaseCallsOnlyWhatWasSpentUnrecoverable(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, spent := range []int64{0, 3, 10} {
		r := newRecord(t, 0)
		mustDo(t, r, purchase("cs_1", "pi_1", 10), now)
		if spent > 0 {
			mustDo(t, r, Operation{Kind: OpConsume, Amount: spent}, now)
		}
		if spent < 10 {
			mustDo(t, r, Operation{Kind: OpVoid, Terms: LotTerms{ID: "lot-cs_1"}}, now)
		}
		mustDo(t, r, grantLot("other", 5, 50, time.Time{}), now) // not the refund's to take
		next, _, _, err := r.account().Apply(refunded("pi_1", 1250, 1250), now, r.rules)
		if err != nil {
			t.Fatal(err)
		}
		if c := refundChange(t, next); c.Credits != 0 || c.Unrecoverable != spent || c.Removed != 10-spent {
			t.Errorf("spent %d, rest voided: refund change %+v, want 0 credits taken, %d unrecoverable, %d removed already", spent, c, spent, 10-spent)
		}
		mustDo(t, r, refunded("pi_1", 1250, 1250), now)
		l := lotOf(t, r.account(), "pi_1")
		if l.Refund != (Refund{Amount: 1250, Credits: 10, Removed: 10 - spent, Unrecoverable: spent}) || l.Removed != 10-spent {
			t.Errorf("spent %d, rest voided: lot %+v, want nothing taken, %d unrecoverable, the %d voided removed already", spent, l, spent, 10-spent)
		}
		if h := r.account().History()[0]; h != (Transaction{Kind: OpRefund, Balance: 5, At: now.UTC(), Reference: "cs_1", Unrecoverable: spent}) {
			t.Errorf("spent %d, rest voided: history %+v", spent, h)
		}
		if r.available() != 5 {
			t.Errorf("spent %d: %d available, want the 5 besides the purchase", spent, r.available())
		}
	}
}

// TestRefundOfAnExpiredPurchaseCallsOnlyWhatWasSpentUnrecoverable: a purchase whose lot
// expires (one a service granted with an expiry through the API, then adopted by the
// webhook's delivery) loses what was left unspent when it expires; a refund after finds
// those credits gone already, as after a void, and calls only the spent unrecoverable.
// Credits a hold had when the lot expired and that the hold returned are removed too:
// they also cover a refund.
func TestRefundOfAnExpiredPurchaseCallsOnlyWhatWasSpentUnrecoverable(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	expires := now.Add(time.Hour)
	r := newRecord(t, 0)
	op := purchase("cs_1", "pi_1", 10)
	op.Terms.ExpiresAt = expires
	mustDo(t, r, op, now)
	mustDo(t, r, Operation{Kind: OpConsume, Amount: 2}, now)
	mustDo(t, r, Operation{Kind: OpReserve, Amount: 3, ReservationID: "h1", TTL: 2 * time.Hour}, now)
	later := expires.Add(time.Minute)
	mustDo(t, r, Operation{Kind: OpExpire}, later)                       // 5 left: removed
	mustDo(t, r, Operation{Kind: OpRelease, ReservationID: "h1"}, later) // 3 back: removed
	mustDo(t, r, refunded("pi_1", 1250, 1250), later)                    // all 10: 8 removed, 2 spent
	l := lotOf(t, r.account(), "pi_1")
	if l.Refund != (Refund{Amount: 1250, Credits: 10, Removed: 8, Unrecoverable: 2}) || l.Removed != 8 {
		t.Errorf("refund of an expired purchase: lot %+v, want nothing taken, the 8 removed, the 2 spent unrecoverable", l)
	}
	if h := r.account().History()[0]; h.Kind != OpRefund || h.Credits != 0 || h.Unrecoverable != 2 {
		t.Errorf("history %+v", h)
	}
}

// TestRefundFromWhatADisputeHoldsIsInItsHistoryEntry: a refund during a dispute takes its
// share from what the dispute holds (off the balance already): the lot's refund counts it
// as taken, and so must the refund's history entry and change, which say what the
// refund took back.
func TestRefundFromWhatADisputeHoldsIsInItsHistoryEntry(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	mustDo(t, r, purchase("cs_1", "pi_1", 10), now)
	mustDo(t, r, Operation{Kind: OpConsume, Amount: 2}, now)
	mustDo(t, r, disputed("pi_1", "du_1", DisputeOpen), now) // holds the 8 left
	next, _, _, err := r.account().Apply(refunded("pi_1", 1000, 500), now, r.rules)
	if err != nil {
		t.Fatal(err)
	}
	if c := refundChange(t, next); c.Credits != 5 || c.FromDispute != 5 || c.Unrecoverable != 0 {
		t.Errorf("refund change %+v, want the 5 credits it took from the dispute", c)
	}
	mustDo(t, r, refunded("pi_1", 1000, 500), now)
	l := lotOf(t, r.account(), "pi_1")
	h := r.account().History()[0]
	if h != (Transaction{Kind: OpRefund, Credits: 5, Balance: 0, At: now.UTC(), Reference: "cs_1"}) || h.Credits != l.Refund.Taken {
		t.Errorf("history %+v, lot's refund %+v: the entry must say the %d credits the refund took", h, l.Refund, l.Refund.Taken)
	}
	mustDo(t, r, disputed("pi_1", "du_1", DisputeWon), now) // returns the 3 the refund left
	if r.available() != 3 {
		t.Errorf("after the dispute was won: %d available, want 3", r.available())
	}
}

// TestHeldPurchasesAreNotAmongTheKeptSpentPurchases: a purchase whose credits an open
// hold keeps is live (counted in MaxLots, kept until the hold ends), not spent: it must
// not take one of the MaxKeptPurchases places of the spent purchases, or the oldest spent
// purchase in its refund window closes early, and 20 closed lots later a refund of it is
// unmatched.
func TestHeldPurchasesAreNotAmongTheKeptSpentPurchases(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	for i := range MaxKeptPurchases {
		at := now.Add(time.Duration(i) * time.Second)
		mustDo(t, r, purchase(fmt.Sprintf("cs_%d", i), fmt.Sprintf("pi_%d", i), 1), at)
		mustDo(t, r, Operation{Kind: OpConsume, Amount: 1}, at)
	}
	later := now.Add(time.Hour)
	for i := range 3 { // newer purchases, all of each held
		mustDo(t, r, purchase(fmt.Sprintf("cs_held%d", i), fmt.Sprintf("pi_held%d", i), 2), later)
		mustDo(t, r, Operation{Kind: OpReserve, Amount: 2, ReservationID: fmt.Sprintf("h%d", i), TTL: time.Hour}, later)
	}
	a := r.account()
	for i := range MaxKeptPurchases {
		if l := lotOf(t, a, fmt.Sprintf("pi_%d", i)); l.Closed != "" {
			t.Fatalf("spent purchase %d of %d, in its refund window, closed as %q while held purchases took its place", i, MaxKeptPurchases, l.Closed)
		}
	}
	if err := a.check(); err != nil {
		t.Fatal(err)
	}
}

// TestRefundAfterADisputeWonOnAVoidedPurchase: a dispute won after its lot was voided
// returns nothing (the lot is closed), as a hold's return to it would not: those credits
// are removed unspent too, and a refund after counts them as gone, not as spent.
func TestRefundAfterADisputeWonOnAVoidedPurchase(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	mustDo(t, r, purchase("cs_1", "pi_1", 10), now)
	mustDo(t, r, Operation{Kind: OpConsume, Amount: 2}, now)
	mustDo(t, r, reserve("h1", 3), now)
	mustDo(t, r, disputed("pi_1", "du_1", DisputeOpen), now)                    // takes the 5 left
	mustDo(t, r, Operation{Kind: OpVoid, Terms: LotTerms{ID: "lot-cs_1"}}, now) // nothing left: closes it, the hold's 3 to go
	mustDo(t, r, disputed("pi_1", "du_1", DisputeWon), now)                     // returns nothing to a voided lot
	mustDo(t, r, Operation{Kind: OpRelease, ReservationID: "h1"}, now)          // the 3 are removed
	mustDo(t, r, refunded("pi_1", 1250, 1250), now)
	if l := lotOf(t, r.account(), "pi_1"); l.Refund != (Refund{Amount: 1250, Credits: 10, Removed: 8, Unrecoverable: 2}) || r.available() != 0 {
		t.Errorf("lot %+v, %d available: want the 8 removed unspent, the 2 spent unrecoverable", l, r.available())
	}
}
