package account

import (
	"testing"
	"time"
)

// TestMergeChargeIsOrderFree: what several refunds and disputes of one payment say
// together does not depend on the order they came in, and a purchase carrying it ends
// where the purchase followed by those events, in that order, would.
func TestMergeChargeIsOrderFree(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	events := []Operation{refunded("pi_1", 1250, 300), refunded("pi_1", 1250, 700), disputed("pi_1", "du_1", DisputeOpen),
		disputed("pi_1", "du_1", DisputeWon), disputed("pi_1", "du_2", DisputeOpen), disputed("pi_1", "du_2", DisputeLost)}
	var want ChargeState
	for i, order := range permutations(len(events)) {
		var c ChargeState
		after := newRecord(t, 0)
		mustDo(t, after, purchase("cs_1", "pi_1", 10), now)
		for _, j := range order {
			c = MergeCharge(c, events[j].Charge)
			mustDo(t, after, events[j], now)
		}
		if i == 0 {
			want = c
		}
		if c != want {
			t.Fatalf("order %v: merged %+v, want %+v", order, c, want)
		}
		early := newRecord(t, 0)
		bought := purchase("cs_1", "pi_1", 10)
		bought.Charge = c
		mustDo(t, early, bought, now)
		if early.available() != after.available() || early.available() != 0 {
			t.Fatalf("order %v: the purchase carrying %+v leaves %d, the events after it %d; want 0", order, c, early.available(), after.available())
		}
	}
	if want != (ChargeState{Amount: 1250, Refunded: 700, Dispute: "du_2", DisputeStatus: DisputeLost}) {
		t.Fatalf("merged: %+v", want)
	}
}

// TestAPurchaseCarryingAnEarlyRefundRecordsBoth: the lot is granted and refunded in one
// decision; the history shows the purchase, then the refund.
func TestAPurchaseCarryingAnEarlyRefundRecordsBoth(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	bought := purchase("cs_1", "pi_1", 10)
	bought.Charge = ChargeState{Amount: 1250, Refunded: 1250}
	mustDo(t, r, bought, now)
	h := r.account().History()
	if r.available() != 0 || len(h) != 2 || h[0].Kind != OpRefund || h[0].Credits != 10 || h[1].Kind != KindPurchase || h[1].Credits != 10 {
		t.Fatalf("balance %d, history %+v; want 0, the purchase of 10 then its refund of 10", r.available(), h)
	}
	if l := lotOf(t, r.account(), "pi_1"); l.Refund.Amount != 1250 || l.Remaining != 0 {
		t.Fatalf("lot %+v", l)
	}
	bad := purchase("cs_2", "pi_2", 10)
	bad.Charge = ChargeState{Amount: 100, Refunded: 200}
	if _, _, err := r.do(bad, now); err == nil {
		t.Fatal("a purchase carrying a refund of more than its charge was accepted")
	}
}
