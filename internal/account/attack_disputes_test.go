package account

import (
	"fmt"
	"testing"
	"time"
)

// TestDisputesEndingWonConvergeWhateverTheOrder: an inquiry (du_1) opened and closed as
// won, and a chargeback (du_2) opened after it and later won. Every order of the first
// three deliveries must leave the lot as the facts say: du_2 open, the purchase's credits
// taken (none returned while a chargeback is open); and du_2's win then returns them.
// A late "created" of the closed inquiry must neither make the lot follow it (so that
// du_2's win is ignored and the credits are lost) nor let the inquiry's win return credits
// while du_2 is still open.
func TestDisputesEndingWonConvergeWhateverTheOrder(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	steps := []Operation{disputed("pi_1", "du_1", DisputeOpen), disputed("pi_1", "du_1", DisputeWon),
		disputed("pi_1", "du_2", DisputeOpen)}
	for _, order := range permutations(len(steps)) {
		r := newRecord(t, 5)
		mustDo(t, r, purchase("cs_1", "pi_1", 10), now)
		for _, i := range order {
			mustDo(t, r, steps[i], now)
		}
		if got := r.available(); got != 5 {
			t.Errorf("order %v: balance %d while the chargeback du_2 is open, want 5 (its 10 credits taken): lot %+v",
				order, got, lotOf(t, r.account(), "pi_1").Dispute)
		}
		mustDo(t, r, disputed("pi_1", "du_2", DisputeWon), now)
		if got := r.available(); got != 15 {
			t.Errorf("order %v: balance %d after the chargeback was won, want 15: lot %+v", order, got, lotOf(t, r.account(), "pi_1").Dispute)
		}
	}
}

// TestAnOpenDisputeKeepsItsLotPastTheKeptPurchases: a purchase under an open dispute that
// took its credits is live (the dispute may return them) and must stay open, whatever
// the number of newer spent purchases under open disputes: closed as spent, its win would
// return nothing (the lot is closed), and 20 closed lots later it is gone (unmatched).
func TestAnOpenDisputeKeepsItsLotPastTheKeptPurchases(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	mustDo(t, r, purchase("cs_old", "pi_old", 10), now)
	mustDo(t, r, disputed("pi_old", "du_old", DisputeOpen), now) // takes the 10
	for i := 0; i < MaxKeptPurchases; i++ {
		at := now.Add(time.Duration(i+1) * time.Second)
		mustDo(t, r, purchase(fmt.Sprintf("cs_%d", i), fmt.Sprintf("pi_%d", i), 1), at)
		// Held while its dispute opens (which takes nothing), then spent: a spent purchase
		// under an open dispute, newer than the first.
		mustDo(t, r, reserve(fmt.Sprintf("h%d", i), 1), at)
		mustDo(t, r, disputed(fmt.Sprintf("pi_%d", i), fmt.Sprintf("du_%d", i), DisputeOpen), at)
		mustDo(t, r, Operation{Kind: OpCapture, ReservationID: fmt.Sprintf("h%d", i), CaptureAll: true}, at)
	}
	later := now.Add(time.Hour)
	if l := lotOf(t, r.account(), "pi_old"); l.Closed != "" {
		t.Errorf("the disputed purchase whose dispute holds 10 credits was closed as %q: %+v", l.Closed, l)
	}
	mustDo(t, r, disputed("pi_old", "du_old", DisputeWon), later)
	if got := r.available(); got != 10 {
		t.Errorf("after the dispute was won: %d available, want the 10 it took", got)
	}
}

// TestAPurchaseResentAfterTheKeyRetentionIsNotGrantedAgain: docs/stripe.md tells the
// operator to `stripe events resend` a purchase's event; resent after
// --grant-key-retention (30 days), its key is forgotten, but its lot still names its
// PaymentIntent (kept 180 days). Granted again, the user has the credits twice and two lots
// name the payment: every refund or dispute of it is then refused as ambiguous (500, retried
// by Stripe for 3 days, then dropped), so nothing is ever taken back.
func TestAPurchaseResentAfterTheKeyRetentionIsNotGrantedAgain(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	bought := purchase("cs_1", "pi_1", 10)
	bought.IdempotencyKey = "stripe-checkout:cs_1"
	mustDo(t, r, bought, now)
	resent := bought
	resent.Terms.ID = "lot-resent" // the store names each attempt's lot anew
	later := now.Add(r.rules.GrantKeyRetention + time.Hour)
	if res := mustDo(t, r, resent, later); !res.Replayed || r.available() != 10 {
		t.Errorf("a purchase resent after the key retention: %+v, %d available, want a replay and 10", res, r.available())
	}
	if _, _, err := r.do(refunded("pi_1", 1250, 1250), later); err != nil {
		t.Fatalf("a full refund after the resend: %v", err)
	}
	if r.available() != 0 {
		t.Errorf("after a full refund: %d available, want 0", r.available())
	}
}

// TestMergeChargeOfAnInquiryAndAnOpenChargebackIsOrderFree: what the store remembers of
// refunds and disputes that came before their purchase (MergeCharge) must not depend on
// their order either: an inquiry opened and won, and a chargeback opened, merge to the
// open chargeback in every order; a purchase carrying it then has its credits taken.
func TestMergeChargeOfAnInquiryAndAnOpenChargebackIsOrderFree(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	events := []Operation{disputed("pi_1", "du_1", DisputeOpen), disputed("pi_1", "du_1", DisputeWon),
		disputed("pi_1", "du_2", DisputeOpen)}
	for _, order := range permutations(len(events)) {
		var c ChargeState
		for _, j := range order {
			c = MergeCharge(c, events[j].Charge)
		}
		r := newRecord(t, 0)
		bought := purchase("cs_1", "pi_1", 10)
		bought.Charge = c
		mustDo(t, r, bought, now)
		if c.Dispute != "du_2" || c.DisputeStatus != DisputeOpen || r.available() != 0 {
			t.Errorf("order %v: merged %+v, the purchase carrying it leaves %d; want du_2 open and 0", order, c, r.available())
		}
	}
}

// TestTheNewestDisputeIsFollowedByItsCreationTime: the newest dispute is the one Stripe
// created last, not the greatest ID: an inquiry du_z (created first) opened and won, and a
// chargeback du_a (created after) opened, in every order, leave du_a open with the credits
// taken, in the lot and in what the store remembers for a purchase that comes later.
func TestTheNewestDisputeIsFollowedByItsCreationTime(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	at := func(op Operation, created int64) Operation { op.Charge.DisputeCreated = created; return op }
	steps := []Operation{at(disputed("pi_1", "du_z", DisputeOpen), 100), at(disputed("pi_1", "du_z", DisputeWon), 100),
		at(disputed("pi_1", "du_a", DisputeOpen), 200)}
	for _, order := range permutations(len(steps)) {
		r := newRecord(t, 0)
		mustDo(t, r, purchase("cs_1", "pi_1", 10), now)
		var c ChargeState
		for _, i := range order {
			mustDo(t, r, steps[i], now)
			c = MergeCharge(c, steps[i].Charge)
		}
		if d := lotOf(t, r.account(), "pi_1").Dispute; r.available() != 0 || d != (Dispute{ID: "du_a", Status: DisputeOpen, Credits: 10, Created: 200}) {
			t.Errorf("order %v: %+v, %d available; want du_a open with the 10 credits", order, d, r.available())
		}
		if c.Dispute != "du_a" || c.DisputeStatus != DisputeOpen {
			t.Errorf("order %v: merged %+v, want du_a open", order, c)
		}
	}
}

// TestALossIsFinalWhateverItFollows: a dispute closed as won and then reported lost (a
// late or reversed close) ends as a loss in either order: the credits taken, as a loss
// that came first would keep them.
func TestALossIsFinalWhateverItFollows(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for name, ops := range map[string][]Operation{
		"won then lost": {disputed("pi_1", "du_1", DisputeOpen), disputed("pi_1", "du_1", DisputeWon), disputed("pi_1", "du_1", DisputeLost)},
		"lost then won": {disputed("pi_1", "du_1", DisputeOpen), disputed("pi_1", "du_1", DisputeLost), disputed("pi_1", "du_1", DisputeWon)},
	} {
		r := newRecord(t, 2)
		mustDo(t, r, purchase("cs_1", "pi_1", 10), now)
		for _, op := range ops {
			mustDo(t, r, op, now)
		}
		if d := lotOf(t, r.account(), "pi_1").Dispute; r.available() != 2 || d.Status != DisputeLost {
			t.Errorf("%s: %+v, %d available; want lost and 2", name, d, r.available())
		}
	}
}
