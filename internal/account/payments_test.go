package account

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
)

// purchase is a Checkout Session's grant of n credits paid by PaymentIntent pi.
func purchase(session, pi string, n int64) Operation {
	return Operation{Kind: OpGrant, Amount: n, Purchase: session, Payment: pi, Terms: LotTerms{ID: "lot-" + session}}
}

// refunded is charge.refunded for pi: amount charged, cumulative amount refunded.
func refunded(pi string, amount, total int64) Operation {
	return Operation{Kind: OpRefund, Payment: pi, Charge: ChargeState{Amount: amount, Refunded: total}}
}

// disputed is a dispute event for pi with the dispute's status.
func disputed(pi, id, status string) Operation {
	return Operation{Kind: OpDispute, Payment: pi, Charge: ChargeState{Dispute: id, DisputeStatus: status}}
}

// lotOf is the stored lot that names payment pi.
func lotOf(t *testing.T, a Account, pi string) Lot {
	t.Helper()
	i, err := a.paymentLot(pi)
	if err != nil {
		t.Fatalf("lot of %s: %v", pi, err)
	}
	return a.Lots[i]
}

func mustDo(t *testing.T, r *record, op Operation, now time.Time) Result {
	t.Helper()
	res, _, err := r.do(op, now)
	if err != nil {
		t.Fatalf("%s: %v", op.Kind, err)
	}
	return res
}

func TestRefundShareRoundsInTheSellersFavour(t *testing.T) {
	for _, c := range []struct{ credits, refunded, amount, want int64 }{
		{10, 300, 1250, 3},   // 2.4
		{10, 625, 1250, 5},   // exact
		{10, 1, 1250, 1},     // any refund takes at least one credit
		{10, 1250, 1250, 10}, // all
		{3, 1000, 1500, 2},   // 2.0
		{MaxBalance, math.MaxInt64 - 1, math.MaxInt64, MaxBalance}, // no overflow: 128-bit product
		{MaxBalance, 1, math.MaxInt64, 1},
	} {
		if got := refundShare(c.credits, c.refunded, c.amount); got != c.want {
			t.Errorf("refundShare(%d, %d, %d) = %d, want %d", c.credits, c.refunded, c.amount, got, c.want)
		}
	}
}

// TestPartialRefundsConvergeWhateverTheOrder: Stripe reports the cumulative amount refunded;
// every order of three partial refunds, each delivered twice, ends in the same lot and
// balance, and takes back ceil(10 × refunded / 1250) at each step that moves forward.
func TestPartialRefundsConvergeWhateverTheOrder(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	steps := []Operation{refunded("pi_1", 1250, 300), refunded("pi_1", 1250, 700), refunded("pi_1", 1250, 1250)}
	for _, order := range [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}} {
		r := newRecord(t, 5)
		mustDo(t, r, purchase("cs_1", "pi_1", 10), now)
		highest := int64(0)
		for _, i := range order {
			for delivery := 0; delivery < 2; delivery++ {
				res, changed, err := r.do(steps[i], now)
				if err != nil {
					t.Fatal(err)
				}
				forward := steps[i].Charge.Refunded > highest && delivery == 0
				if changed != forward || res.Replayed == forward {
					t.Fatalf("order %v: refund of %d (delivery %d): changed %v replayed %v, want changed %v", order, steps[i].Charge.Refunded, delivery, changed, res.Replayed, forward)
				}
				if forward {
					highest = steps[i].Charge.Refunded
				}
				want := 15 - refundShare(10, highest, 1250)
				if got := r.available(); got != want {
					t.Fatalf("order %v: after %d refunded, %d available, want %d", order, highest, got, want)
				}
			}
		}
		l := lotOf(t, r.account(), "pi_1")
		if l.Refund != (Refund{Amount: 1250, Credits: 10, Taken: 10}) || l.Remaining != 0 || r.available() != 5 {
			t.Fatalf("order %v: lot %+v, %d available", order, l, r.available())
		}
	}
}

// TestRefundAfterSpendingRecordsWhatIsUnrecoverable: what was spent cannot be taken back;
// the balance never goes below zero, and the refund's entry says both numbers.
func TestRefundAfterSpendingRecordsWhatIsUnrecoverable(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	mustDo(t, r, purchase("cs_1", "pi_1", 10), now)
	mustDo(t, r, Operation{Kind: OpConsume, Amount: 7}, now)
	next, _, _, err := r.account().Apply(refunded("pi_1", 1250, 1250), now, r.rules)
	if err != nil {
		t.Fatal(err)
	}
	if c := next.Changes(); len(c) != 1 || c[0] != (LotChange{Lot: "lot-cs_1", Credits: 3, Why: Refunded, Reference: "cs_1", Unrecoverable: 7}) {
		t.Fatalf("changes %+v", c)
	}
	mustDo(t, r, refunded("pi_1", 1250, 1250), now)
	if r.available() != 0 {
		t.Fatalf("%d available, want 0", r.available())
	}
	if l := lotOf(t, r.account(), "pi_1"); l.Refund != (Refund{Amount: 1250, Credits: 10, Taken: 3, Unrecoverable: 7}) {
		t.Fatalf("refund %+v", l.Refund)
	}
	h := r.account().History()
	if h[0] != (Transaction{Kind: OpRefund, Credits: 3, Balance: 0, At: now.UTC(), Reference: "cs_1", Unrecoverable: 7}) {
		t.Fatalf("history %+v", h[0])
	}
}

// TestRefundClaimsWhatAHoldKeeps: credits an open hold took from the lot are taken when the
// hold returns them, unrecoverable when it spends them.
func TestRefundClaimsWhatAHoldKeeps(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for name, c := range map[string]struct {
		close         Operation
		taken, unrec  int64
		wantAvailable int64
	}{
		"released": {Operation{Kind: OpRelease, ReservationID: "h1"}, 10, 0, 0},
		"captured": {Operation{Kind: OpCapture, ReservationID: "h1", Amount: 2}, 8, 2, 0},
	} {
		r := newRecord(t, 0)
		mustDo(t, r, purchase("cs_1", "pi_1", 10), now)
		mustDo(t, r, reserve("h1", 6), now)
		mustDo(t, r, refunded("pi_1", 1250, 1250), now)
		if l := lotOf(t, r.account(), "pi_1"); l.Refund != (Refund{Amount: 1250, Credits: 10, Taken: 4}) || r.available() != 0 {
			t.Fatalf("%s: before the hold closes: %+v, %d available", name, l.Refund, r.available())
		}
		mustDo(t, r, c.close, now)
		l := lotOf(t, r.account(), "pi_1")
		if l.Refund != (Refund{Amount: 1250, Credits: 10, Taken: c.taken, Unrecoverable: c.unrec}) || r.available() != c.wantAvailable || l.Remaining != 0 {
			t.Fatalf("%s: %+v, %d left, %d available", name, l.Refund, l.Remaining, r.available())
		}
	}
}

// TestDisputeTakesWhatIsLeftAndAWinReturnsItOnce.
func TestDisputeTakesWhatIsLeftAndAWinReturnsItOnce(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 4)
	mustDo(t, r, purchase("cs_1", "pi_1", 10), now)
	mustDo(t, r, grantLot("promo", 1, 10, time.Time{}), now) // spent first
	mustDo(t, r, Operation{Kind: OpConsume, Amount: 4}, now) // promo 1, then the balance lot's 4 (older): 3
	left := lotOf(t, r.account(), "pi_1").Remaining
	mustDo(t, r, disputed("pi_1", "du_1", DisputeOpen), now)
	if l := lotOf(t, r.account(), "pi_1"); l.Remaining != 0 || l.Dispute != (Dispute{ID: "du_1", Status: DisputeOpen, Credits: left}) || r.available() != 11-left {
		t.Fatalf("disputed: %+v, %d available", l, r.available())
	}
	for _, step := range []struct {
		op   Operation
		want int64
	}{
		{disputed("pi_1", "du_1", DisputeOpen), 11 - left}, // a redelivery
		{disputed("pi_1", "du_1", DisputeWon), 11},
		{disputed("pi_1", "du_1", DisputeWon), 11},  // funds_reinstated after closed: once
		{disputed("pi_1", "du_1", DisputeOpen), 11}, // a late created
	} {
		mustDo(t, r, step.op, now)
		if r.available() != step.want {
			t.Fatalf("after %s: %d available, want %d", step.op.Charge.DisputeStatus, r.available(), step.want)
		}
	}
	kinds := []OpKind{}
	for _, e := range r.account().History()[:2] {
		kinds = append(kinds, e.Kind)
	}
	if fmt.Sprint(kinds) != "[reinstate dispute]" {
		t.Fatalf("history %v", r.account().History())
	}
}

func TestDisputeLostKeepsWhatItTook(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for name, ops := range map[string][]Operation{
		"in order":             {disputed("pi_1", "du_1", DisputeOpen), disputed("pi_1", "du_1", DisputeLost)},
		"lost before created":  {disputed("pi_1", "du_1", DisputeLost), disputed("pi_1", "du_1", DisputeOpen)},
		"lost then a late win": {disputed("pi_1", "du_1", DisputeOpen), disputed("pi_1", "du_1", DisputeLost), disputed("pi_1", "du_1", DisputeWon)},
	} {
		r := newRecord(t, 2)
		mustDo(t, r, purchase("cs_1", "pi_1", 10), now)
		for _, op := range ops {
			mustDo(t, r, op, now)
		}
		if l := lotOf(t, r.account(), "pi_1"); r.available() != 2 || l.Dispute != (Dispute{ID: "du_1", Status: DisputeLost, Credits: 10}) {
			t.Fatalf("%s: %+v, %d available", name, l.Dispute, r.available())
		}
	}
}

// TestDisputeWonBeforeItsCreationWasSeenTakesNothing: a late "created" after the close
// changes nothing.
func TestDisputeWonBeforeItsCreationWasSeenTakesNothing(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	mustDo(t, r, purchase("cs_1", "pi_1", 10), now)
	mustDo(t, r, disputed("pi_1", "du_1", DisputeWon), now)
	if _, changed, err := r.do(disputed("pi_1", "du_1", DisputeOpen), now); err != nil || changed {
		t.Fatalf("a late created: changed %v, %v", changed, err)
	}
	if r.available() != 10 {
		t.Fatalf("%d available, want 10", r.available())
	}
}

// TestRefundDuringADisputeTakesFromWhatTheDisputeKeeps: a dispute won after a full refund
// returns nothing.
func TestRefundDuringADisputeTakesFromWhatTheDisputeKeeps(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	mustDo(t, r, purchase("cs_1", "pi_1", 10), now)
	mustDo(t, r, Operation{Kind: OpConsume, Amount: 2}, now)
	mustDo(t, r, disputed("pi_1", "du_1", DisputeOpen), now)
	mustDo(t, r, refunded("pi_1", 1000, 500), now) // half: 5 credits, from the 8 the dispute keeps
	mustDo(t, r, disputed("pi_1", "du_1", DisputeWon), now)
	if l := lotOf(t, r.account(), "pi_1"); r.available() != 3 || l.Refund.Taken != 5 || l.Refund.Unrecoverable != 0 {
		t.Fatalf("%+v, %d available, want 3", l, r.available())
	}
}

// TestSpentPurchasesAreKeptForTheRefundWindow: a spent purchase is no grant (GET
// /api/credits/grants) but its lot stays for PurchaseRefundWindow, so that a late refund
// finds it; after, it is closed as spent (a refund of it still finds it, and takes nothing:
// all unrecoverable) and goes with the oldest closed lots, after which a refund is unmatched.
func TestSpentPurchasesAreKeptForTheRefundWindow(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	mustDo(t, r, purchase("cs_1", "pi_1", 10), now)
	mustDo(t, r, Operation{Kind: OpConsume, Amount: 10}, now)
	if g := r.account().Grants(now); len(g) != 0 {
		t.Fatalf("a spent purchase is listed as a grant: %+v", g)
	}
	later := now.Add(PurchaseRefundWindow - time.Hour)
	mustDo(t, r, refunded("pi_1", 1250, 125), later)
	if l := lotOf(t, r.account(), "pi_1"); l.Refund.Unrecoverable != 1 {
		t.Fatalf("refund %+v", l.Refund)
	}
	after := now.Add(PurchaseRefundWindow)
	mustDo(t, r, Operation{Kind: OpSet, Amount: 1}, after)
	if l := lotOf(t, r.account(), "pi_1"); l.Closed != lotSpent {
		t.Fatalf("a spent purchase after the window: %+v, want it closed as spent", l)
	}
	mustDo(t, r, refunded("pi_1", 1250, 250), after)
	if l := lotOf(t, r.account(), "pi_1"); l.Refund.Unrecoverable != 2 || r.available() != 1 {
		t.Fatalf("a refund of a closed purchase: %+v, %d available", l.Refund, r.available())
	}
	closeLots(t, r, MaxClosedLots, after)
	if _, _, err := r.do(refunded("pi_1", 1250, 500), after.Add(time.Minute)); !errors.Is(err, ErrPaymentNotFound) {
		t.Fatalf("a refund after the lot went with the oldest closed: %v, want ErrPaymentNotFound", err)
	}
}

// TestSpentPurchasesKeptAreBounded: at most MaxKeptPurchases spent purchases, the newest,
// stay open; the others close as spent.
func TestSpentPurchasesKeptAreBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	for i := 0; i <= MaxKeptPurchases; i++ {
		at := now.Add(time.Duration(i) * time.Second)
		mustDo(t, r, purchase(fmt.Sprintf("cs_%d", i), fmt.Sprintf("pi_%d", i), 1), at)
		mustDo(t, r, Operation{Kind: OpConsume, Amount: 1}, at)
	}
	a := r.account()
	open := 0
	for _, l := range a.Lots {
		if l.Closed == "" {
			open++
		}
	}
	if open != MaxKeptPurchases {
		t.Fatalf("%d spent purchases kept open, want %d", open, MaxKeptPurchases)
	}
	if l := lotOf(t, a, "pi_0"); l.Closed != lotSpent {
		t.Fatalf("the oldest spent purchase: %+v, want it closed (kept with the closed lots)", l)
	}
	lotOf(t, a, fmt.Sprintf("pi_%d", MaxKeptPurchases))
}

func TestRefundsAndDisputesAreCheckedBeforeAnythingIsRead(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	mustDo(t, r, purchase("cs_1", "pi_1", 10), now)
	for name, op := range map[string]Operation{
		"refunded above the amount": refunded("pi_1", 100, 101),
		"nothing refunded":          refunded("pi_1", 100, 0),
		"no payment":                refunded("", 100, 50),
		"a payment that is no ID":   refunded("pi 1", 100, 50),
		"a key":                     {Kind: OpRefund, Payment: "pi_1", Charge: ChargeState{Amount: 1, Refunded: 1}, IdempotencyKey: "k"},
		"an unknown status":         disputed("pi_1", "du_1", "warning_closed"),
		"a dispute without its id":  disputed("pi_1", "", DisputeOpen),
		"a charge on a grant":       {Kind: OpGrant, Amount: 1, Charge: ChargeState{Amount: 1}},
		"a payment on a consume":    {Kind: OpConsume, Amount: 1, Payment: "pi_1"},
	} {
		if _, _, err := r.do(op, now); !errors.Is(err, ErrInvalidOperation) {
			t.Errorf("%s: %v, want ErrInvalidOperation", name, err)
		}
	}
	if _, _, err := r.do(refunded("pi_2", 100, 50), now); !errors.Is(err, ErrPaymentNotFound) {
		t.Fatalf("an unknown payment: %v", err)
	}
	if r.available() != 10 {
		t.Fatalf("%d available", r.available())
	}
}
