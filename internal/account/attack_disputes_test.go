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
