package account

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A randomized property test of the reconciled lot rules (issues 20 and 21): random
// sequences of every operation, purchases, refunds and disputes among them, each decided
// on the record decoded from its stored object and written as the apiserver would (record),
// checking after every write what no legal sequence may break:
//   - the record decodes (check()), and is what the CRD accepts (lots bound, per-lot rules);
//   - conservation: available+held moves by exactly what the operation moved (granted,
//     spent, set) and what its lot changes say were removed or returned;
//   - each purchase lot follows the largest refund delivered (ceil share) and never calls
//     unrecoverable more than was spent of it; with nothing held, its refund is settled;
//   - payment labels are exactly the payments the lots name;
//   - every history entry written reads back.

// propPurchase is one Checkout Session the test bought.
type propPurchase struct {
	session, pi string
	credits     int64
	amount      int64 // the charge, in cents
	refunded    int64 // the largest cumulative refund delivered and matched
	at          time.Time
}

type propRun struct {
	t         *testing.T
	rng       *rand.Rand
	r         *record
	now       time.Time
	purchases []*propPurchase
	lots      []string // lot IDs ever granted
	holds     []string // hold IDs ever made
	n         int
	// crowd: many grants and purchases, little spending, to reach the lot bounds.
	crowd bool
	// what the run reached: the most live and stored lots, grants refused at the bound.
	maxLive, maxStored, tooMany int
	// per lot: what its changes removed (expired, voided), took for refunds and disputes,
	// and returned (reinstated); what voids removed.
	removed, refundTaken, disputed, reinstated map[string]int64
	// refundEntries: what the refunds' changes (their history entries) say they took.
	refundEntries map[string]int64
	entries       int64 // history entries expected
	log           []string
}

// TestAttackLotsPropertyRandom runs many random sequences; ATTACK_SEEDS raises the count.
func TestAttackLotsPropertyRandom(t *testing.T) {
	seeds := 6
	if s, err := strconv.Atoi(os.Getenv("ATTACK_SEEDS")); err == nil {
		seeds = s
	}
	for seed := range seeds {
		p := &propRun{t: t, rng: rand.New(rand.NewPCG(uint64(seed), 7)), r: newRecord(t, 0), now: time.Unix(1_800_000_000, 0),
			removed: map[string]int64{}, refundTaken: map[string]int64{}, disputed: map[string]int64{}, reinstated: map[string]int64{},
			refundEntries: map[string]int64{}}
		p.r.cache = seed%3 == 1
		p.crowd = seed%2 == 1
		if !p.run(300 + 700*(seed%2)) {
			t.Fatalf("seed %d failed; the last operations:\n%s", seed, strings.Join(p.log[max(0, len(p.log)-25):], "\n"))
		}
		t.Logf("seed %d: at most %d live lots, %d stored, %d refused for the bound", seed, p.maxLive, p.maxStored, p.tooMany)
	}
}

func (p *propRun) pick(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return list[p.rng.IntN(len(list))]
}

// op is a random operation.
func (p *propRun) op() Operation {
	rng := p.rng
	p.n++
	k := rng.IntN(100)
	if p.crowd && (k >= 24 && k < 52 || k >= 70 && k < 78) && rng.IntN(5) > 0 {
		k = rng.IntN(24) // a grant or a purchase instead of most consumes and holds
	}
	switch {
	case k < 12:
		id := fmt.Sprintf("g-%d", p.n)
		p.lots = append(p.lots, id)
		op := Operation{Kind: OpGrant, Amount: 1 + rng.Int64N(20), Terms: LotTerms{ID: id}}
		if rng.IntN(2) == 0 {
			op.Terms.Priority = prio(int32(rng.IntN(3) * 50))
		}
		if rng.IntN(2) == 0 && (!p.crowd || rng.IntN(4) == 0) {
			op.Terms.ExpiresAt = p.now.Add(time.Duration(1+rng.IntN(600)) * time.Second)
		}
		if rng.IntN(4) == 0 {
			op.IdempotencyKey = fmt.Sprintf("gk-%d", rng.IntN(p.n))
		}
		return op
	case k < 24:
		if len(p.purchases) > 0 && rng.IntN(4) == 0 { // a redelivery of a purchase, within Stripe's 3 days
			if b := p.purchases[rng.IntN(len(p.purchases))]; p.now.Sub(b.at) < 72*time.Hour {
				op := purchase(b.session, b.pi, b.credits)
				op.IdempotencyKey = "stripe-checkout:" + b.session
				return op
			}
		}
		b := &propPurchase{session: fmt.Sprintf("cs_%d", p.n), pi: fmt.Sprintf("pi_%d", p.n), credits: 1 + rng.Int64N(20), at: p.now}
		b.amount = b.credits * 125
		p.purchases = append(p.purchases, b)
		p.lots = append(p.lots, "lot-"+b.session)
		op := purchase(b.session, b.pi, b.credits)
		op.IdempotencyKey = "stripe-checkout:" + b.session
		if rng.IntN(6) == 0 { // refunds and disputes that came before it
			op.Charge = ChargeState{Amount: b.amount, Refunded: 1 + rng.Int64N(b.amount)}
			if rng.IntN(2) == 0 {
				op.Charge.Dispute, op.Charge.DisputeStatus = "du_"+b.pi+"_a", []string{DisputeOpen, DisputeWon, DisputeLost}[rng.IntN(3)]
			}
		}
		return op
	case k < 40:
		return Operation{Kind: OpConsume, Amount: 1 + rng.Int64N(15)}
	case k < 52:
		id := fmt.Sprintf("h-%d", p.n)
		p.holds = append(p.holds, id)
		return Operation{Kind: OpReserve, Amount: 1 + rng.Int64N(15), ReservationID: id, TTL: time.Duration(1+rng.IntN(300)) * time.Second}
	case k < 60:
		op := Operation{Kind: OpCapture, ReservationID: p.pick(p.holds), Amount: rng.Int64N(8)}
		op.CaptureAll = rng.IntN(2) == 0
		return op
	case k < 65:
		return Operation{Kind: OpRelease, ReservationID: p.pick(p.holds)}
	case k < 70:
		return Operation{Kind: OpVoid, Terms: LotTerms{ID: p.pick(append(p.lots, BalanceLotID))}}
	case k < 73:
		return Operation{Kind: OpSet, Amount: rng.Int64N(60)}
	case k < 78:
		if rng.IntN(2) == 0 {
			return Operation{Kind: OpExpire}
		}
		return Operation{Kind: OpExpire, ReservationID: p.pick(p.holds)}
	case k < 90:
		if len(p.purchases) == 0 {
			return Operation{Kind: OpExpire}
		}
		b := p.purchases[rng.IntN(len(p.purchases))]
		return refunded(b.pi, b.amount, 1+rng.Int64N(b.amount))
	default:
		if len(p.purchases) == 0 {
			return Operation{Kind: OpExpire}
		}
		b := p.purchases[rng.IntN(len(p.purchases))]
		return disputed(b.pi, "du_"+b.pi+"_"+[]string{"a", "b"}[rng.IntN(2)], []string{DisputeOpen, DisputeWon, DisputeLost}[rng.IntN(3)])
	}
}

func (p *propRun) fail(format string, args ...any) bool {
	p.t.Helper()
	p.t.Errorf(format, args...)
	return false
}

// run applies steps random operations, time moving on between them; false on a failure.
func (p *propRun) run(steps int) bool {
	for range steps {
		switch p.rng.IntN(20) {
		case 0:
			p.now = p.now.Add(PurchaseRefundWindow/2 + time.Duration(p.rng.IntN(3600))*time.Second)
		default:
			p.now = p.now.Add(time.Duration(p.rng.IntN(90)) * time.Second)
		}
		if !p.step(p.op()) {
			return false
		}
	}
	return true
}

// step decides op on the stored record, writes it, and checks the properties.
func (p *propRun) step(op Operation) bool {
	t := p.t
	t.Helper()
	before := p.r.account()
	if p.r.cache { // the whole record, to read ledgers and history
		p.r.cache = false
		before = p.r.account()
		p.r.cache = true
	}
	decidedOn := p.r.account()
	next, res, changed, err := decidedOn.Apply(op, p.now, p.r.rules)
	if errors.Is(err, ErrNeedWholeRecord) {
		next, res, changed, err = before.Apply(op, p.now, p.r.rules)
	}
	p.log = append(p.log, fmt.Sprintf("%s %s: %+v -> %+v changed %v err %v", p.now.Format(time.DateTime), op.Kind, op, res, changed, err))
	if errors.Is(err, ErrUntrusted) {
		return p.fail("%s refused as breaking an invariant (a decision the rules let through): %v", op.Kind, err)
	}
	if errors.Is(err, ErrTooManyLots) {
		p.tooMany++
	}
	if err != nil || !changed {
		return true
	}
	p.r.write(next)
	after := p.r.account()
	if p.r.cache {
		p.r.cache = false
		after = p.r.account()
		p.r.cache = true
	}
	return p.conserved(before, next, op, res) && p.lotsHold(after, next) && p.followRefunds(op, before, after) && p.historyReads(after, next, before)
}

// conserved: available+held moved by what op moved and what the lot changes say.
func (p *propRun) conserved(before, next Account, op Operation, res Result) bool {
	want := before.Available + before.Held()
	switch op.Kind {
	case OpGrant:
		if !res.Replayed {
			want += op.Amount
		}
	case OpConsume:
		want -= op.Amount
	case OpSet:
		want += op.Amount - before.Available
		for _, c := range next.Changes() { // expired first: the set is of the balance after
			if c.Why == RemovedExpired && before.Lots[before.lot(c.Lot)].Closed == "" {
				want += c.Credits
			}
		}
	case OpCapture:
		if !res.Replayed {
			for _, h := range before.Holds {
				if h.ID == op.ReservationID {
					if op.CaptureAll {
						want -= h.Credits
					} else {
						want -= op.Amount
					}
				}
			}
		}
	case OpVoid:
		if i := before.lot(op.Terms.ID); i >= 0 {
			want -= before.Lots[i].Remaining
			p.removed[op.Terms.ID] += before.Lots[i].Remaining
			if before.Lots[i].expired(p.now) { // expired first, then refused: never written
				return p.fail("a void of an expired lot was written")
			}
		}
	}
	for _, c := range next.Changes() {
		switch c.Why {
		case RemovedExpired, RemovedVoided:
			want -= c.Credits
			p.removed[c.Lot] += c.Credits
		case Refunded:
			// What it took of what a dispute held was off the balance already.
			want -= c.Credits - c.FromDispute
			p.refundTaken[c.Lot] += c.Credits - c.FromDispute
			p.refundEntries[c.Lot] += c.Credits
		case Disputed:
			want -= c.Credits
			p.disputed[c.Lot] += c.Credits
		case Reinstated:
			want += c.Credits
			p.reinstated[c.Lot] += c.Credits
		}
	}
	got := next.Available + next.Held()
	if got != want {
		return p.fail("%s: available+held %d, want %d (before %d+%d; changes %+v)", op.Kind, got, want, before.Available, before.Held(), next.Changes())
	}
	if next.Available < 0 {
		return p.fail("balance below zero: %d", next.Available)
	}
	return true
}

// lotsHold: what the CRD and the lot bounds say of the stored lots, and the labels.
func (p *propRun) lotsHold(a, decided Account) bool {
	obj := p.r.obj
	if len(obj.Spec.Lots) > MaxStoredLots {
		return p.fail("%d stored lots, over the CRD's %d", len(obj.Spec.Lots), MaxStoredLots)
	}
	var sum int64
	for _, l := range obj.Spec.Lots {
		sum += l.Remaining
		switch {
		case l.ID != BalanceLotID && l.Remaining > l.Credits, l.Closed != "" && l.Remaining != 0, l.Credits < 1:
			return p.fail("lot %+v breaks the CRD's rules", l)
		case l.Refund != nil && (l.Refund.AmountRefunded < 1 || l.Refund.Taken+l.Refund.Removed+l.Refund.Unrecoverable > l.Refund.Credits):
			return p.fail("lot %s's refund %+v breaks the CRD's rules", l.ID, *l.Refund)
		}
	}
	if len(obj.Spec.Lots) > 0 && sum != obj.Spec.Credits {
		return p.fail("the lots hold %d, spec.credits %d", sum, obj.Spec.Credits)
	}
	live := liveLots(a.Lots, a.heldByLot())
	p.maxLive, p.maxStored = max(p.maxLive, live), max(p.maxStored, len(obj.Spec.Lots))
	if live > MaxLots {
		return p.fail("%d live lots, over %d", live, MaxLots)
	}
	want := map[string]bool{}
	for _, l := range a.Lots {
		if l.Payment != "" {
			want[PaymentLabel(l.Payment)] = true
		}
	}
	for name := range obj.Labels {
		if strings.HasPrefix(name, PaymentLabelPrefix) && !want[name] {
			return p.fail("label %s names no lot's payment", name)
		}
	}
	for name := range want {
		if obj.Labels[name] != PaymentLabelValue {
			return p.fail("a lot names a payment whose label %s the record lacks: a miss would be unmatched", name)
		}
	}
	return true
}

// followRefunds: each purchase lot follows the largest refund delivered, and what it calls
// unrecoverable was spent.
func (p *propRun) followRefunds(op Operation, before, after Account) bool {
	if op.Kind == OpRefund || op.Kind == OpGrant && op.Charge.Refunded > 0 {
		for _, b := range p.purchases {
			if b.pi == op.Payment && before.lotOfPayment(b.pi) >= 0 || op.Kind == OpGrant && b.pi == op.Payment {
				b.refunded = max(b.refunded, op.Charge.Refunded)
			}
		}
	}
	held := after.heldByLot()
	for _, b := range p.purchases {
		i := after.lotOfPayment(b.pi)
		if i < 0 {
			continue
		}
		l := after.Lots[i]
		r := l.Refund
		if b.refunded > 0 && (r.Amount != b.refunded || r.Credits != refundShare(l.Credits, b.refunded, b.amount)) {
			return p.fail("lot %s refund %+v, want it to follow %d of %d refunded (%d credits)", l.ID, r, b.refunded, b.amount,
				refundShare(l.Credits, b.refunded, b.amount))
		}
		if held[l.ID] == 0 && r.Taken+r.Removed+r.Unrecoverable != r.Credits {
			return p.fail("lot %s, nothing held: refund %+v unsettled", l.ID, r)
		}
		// The refunds' changes (their history entries) say what the lot's refund took,
		// what it took of what a dispute kept (already off the balance) included.
		if r.Taken != p.refundEntries[l.ID] {
			return p.fail("lot %s refund took %d, its changes say %d", l.ID, r.Taken, p.refundEntries[l.ID])
		}
		spent := l.Credits - l.Remaining - held[l.ID] - p.removed[l.ID] - p.refundTaken[l.ID] - (p.disputed[l.ID] - p.reinstated[l.ID])
		if spent < 0 {
			return p.fail("lot %s: %d credits more than it was granted (%+v, held %d, removed %d, refunds took %d, disputed %d, reinstated %d)", l.ID, -spent,
				l, held[l.ID], p.removed[l.ID], p.refundTaken[l.ID], p.disputed[l.ID], p.reinstated[l.ID])
		}
		// What a void or expiry removed was never spent: a refund never calls it
		// unrecoverable (a Warning for credits nobody spent).
		if spent < r.Unrecoverable {
			return p.fail("lot %s: %d unrecoverable but %d spent (%+v, held %d, removed %d, disputed %d, reinstated %d)", l.ID, r.Unrecoverable,
				spent, l, held[l.ID], p.removed[l.ID], p.disputed[l.ID], p.reinstated[l.ID])
		}
	}
	return true
}

// lotOfPayment is the index of the lot naming pi, or -1.
func (a *Account) lotOfPayment(pi string) int {
	i, err := a.paymentLot(pi)
	if err != nil {
		return -1
	}
	return i
}

// historyReads: every entry the write added reads back.
func (p *propRun) historyReads(after, next, before Account) bool {
	added := next.history.seq - before.history.seq
	p.entries += added
	if got, want := int64(len(after.History())), min(p.entries, HistoryLength); got != want {
		return p.fail("the history reads %d entries, want %d: %v", got, want, after.History()[:min(3, len(after.History()))])
	}
	for _, e := range after.History()[:min(int(added), len(after.History()))] {
		if e.Kind == OpRefund && e.Reference == "" {
			return p.fail("a refund entry names no purchase: %+v", e)
		}
	}
	return true
}
