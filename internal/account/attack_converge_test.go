package account

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestAttackPaymentEventsConvergeInAnyOrder: after a random history of a user (grants,
// purchases, spending, holds left open), a random set of Stripe events about one purchase
// (cumulative refunds, an inquiry and a chargeback opened and closed, each with its
// creation time) delivered in two random orders, each event possibly twice, ends in the
// same balance and the same lot.
func TestAttackPaymentEventsConvergeInAnyOrder(t *testing.T) {
	for seed := range 500 {
		rng := rand.New(rand.NewPCG(uint64(seed), 11))
		now := time.Unix(1_800_000_000, 0)
		base := newRecord(t, rng.Int64N(20))
		credits := 1 + rng.Int64N(30)
		mustDo(t, base, purchase("cs_x", "pi_x", credits), now)
		for i := range rng.IntN(6) {
			switch rng.IntN(4) {
			case 0:
				base.do(Operation{Kind: OpConsume, Amount: 1 + rng.Int64N(15)}, now)
			case 1:
				base.do(reserve(fmt.Sprintf("h%d", i), 1+rng.Int64N(10)), now)
			case 2:
				base.do(grantLot(fmt.Sprintf("g%d", i), 1+rng.Int64N(10), int32(rng.IntN(101)), time.Time{}), now)
			default:
				base.do(purchase(fmt.Sprintf("cs_%d", i), fmt.Sprintf("pi_%d", i), 1+rng.Int64N(10)), now)
			}
		}
		amount := credits * 125
		var events []Operation
		for range rng.IntN(4) {
			events = append(events, refunded("pi_x", amount, 1+rng.Int64N(amount)))
		}
		for j, id := range []string{"du_q", "du_c"}[:rng.IntN(3)] {
			created := int64(1000 + 100*j)
			statuses := []string{DisputeOpen, []string{DisputeWon, DisputeLost, DisputeOpen}[rng.IntN(3)]}
			if rng.IntN(4) == 0 {
				statuses = []string{DisputeOpen, DisputeWon, DisputeLost} // funds reinstated, then lost after all
			}
			for _, status := range statuses {
				op := disputed("pi_x", id, status)
				op.Charge.DisputeCreated = created
				events = append(events, op)
			}
		}
		var results []string
		for range 2 {
			r := &record{t: t, obj: base.obj.DeepCopy(), rules: base.rules}
			order := rng.Perm(len(events))
			for _, i := range order {
				for range 1 + rng.IntN(2) {
					mustDo(t, r, events[i], now)
				}
			}
			l := lotOf(t, r.account(), "pi_x")
			if l.Dispute.Status == DisputeWon {
				l.Dispute.Credits = 0 // what a won dispute had taken: a record, read by nothing
			}
			if l.Dispute.Status == DisputeLost {
				l.Dispute.ID, l.Dispute.Created = "", 0 // two lost: either is final
			}
			results = append(results, fmt.Sprintf("available %d, lot %d left, refund %+v, dispute %+v", r.available(), l.Remaining, l.Refund, l.Dispute))
		}
		if results[0] != results[1] {
			t.Fatalf("seed %d: events %+v\nin one order: %s\nin another:   %s", seed, events, results[0], results[1])
		}
	}
}
