package account

import (
	"math/bits"
	"slices"
	"time"
)

// Refunds and disputes of a Stripe purchase act on the purchase's lot, which names its
// PaymentIntent (Lot.Payment). Both are decided without a key: Stripe's events carry
// monotonic facts (the cumulative amount refunded, a dispute's final status), and the lot
// records how far it has followed them, so a redelivered or late event changes nothing and
// any order of deliveries ends in the same lot.
//
// What a refund takes back is ceil(lot credits × amount refunded / charge amount): the
// refunded share, rounded in the seller's favour. It comes from what is left of the lot
// first, then from what a dispute of it holds (both taken); credits a void or the lot's
// expiry removed are gone already and cover it next (neither taken nor unrecoverable: the
// user never spent them); what open holds keep of the lot is claimed (removed when a hold
// returns it, unrecoverable when a hold spends it: the hold finishes, as when a lot
// expires under a hold); what was spent is unrecoverable and recorded. A dispute takes
// what is left of the lot, and what holds return to it while it is open or lost; won, it
// returns all it took, once. Balances never go below zero: only credits the lot still
// has are ever taken.

// PurchaseRefundWindow is how long a spent purchase lot is kept (at least) after its
// grant, so that a refund or dispute of it still finds it: Stripe refunds card payments
// for up to 180 days. MaxKeptPurchases bounds how many spent purchase lots one user keeps
// (the newest, and those under an open dispute), so that a record's size stays bounded.
const (
	PurchaseRefundWindow = 180 * 24 * time.Hour
	MaxKeptPurchases     = 100
)

// Dispute statuses (Dispute.Status, ChargeState.DisputeStatus).
const (
	DisputeOpen = "open"
	DisputeWon  = "won"
	DisputeLost = "lost"
)

// Refund is what refunds of a purchase's payment took back from its lot.
type Refund struct {
	// Amount is the largest cumulative amount refunded Stripe reported.
	Amount int64
	// Credits is how many credits the refunds take back; Taken how many they removed
	// (from what was left of the lot, what a dispute of it held, or what holds returned to
	// it), Removed how many a void or the lot's expiry had removed already (Lot.Removed),
	// Unrecoverable how many had been spent. The rest are claimed from open holds.
	Credits, Taken, Removed, Unrecoverable int64
}

// claimed is how many credits the refunds still claim from the lot's open holds.
func (r Refund) claimed() int64 { return r.Credits - r.Taken - r.Removed - r.Unrecoverable }

// Dispute is a dispute of a purchase's payment and what it took from its lot.
type Dispute struct {
	ID, Status string
	Credits    int64
	// Created is when Stripe created it (unix seconds; 0: not known).
	Created int64
}

// newer reports whether dispute id, created at created, is newer than d: created later,
// or at the same second with a greater ID (an order every replica and every delivery
// order agree on). Of a payment's disputes, the lot follows the newest.
func (d Dispute) newer(id string, created int64) bool {
	if created != d.Created {
		return created > d.Created
	}
	return id > d.ID
}

// holding reports whether the dispute keeps what holds return to the lot: while it is
// open, or once lost.
func (d Dispute) holding() bool { return d.Status == DisputeOpen || d.Status == DisputeLost }

// returnable reports whether the dispute may yet return credits to the lot.
func (d Dispute) returnable() bool { return d.Status == DisputeOpen && d.Credits > 0 }

// validPayment checks a refund or a dispute before anything is read.
func (op Operation) validPayment() bool {
	c := op.Charge
	switch {
	case !ValidReference(op.Payment) || op.IdempotencyKey != "" || op.Amount != 0 || op.Terms != (LotTerms{}) || op.Purchase != "":
		return false
	case op.Kind == OpRefund:
		return c.Amount > 0 && c.Refunded > 0 && c.Refunded <= c.Amount && c.Dispute == "" && c.DisputeStatus == ""
	}
	return c.Amount == 0 && c.Refunded == 0 && ValidReference(c.Dispute) && c.DisputeCreated >= 0 &&
		(c.DisputeStatus == DisputeOpen || c.DisputeStatus == DisputeWon || c.DisputeStatus == DisputeLost)
}

// validPayment checks what a lot records of its payment: a stored record that breaks it
// (edited by hand past the CRD's rules) is untrusted, as refunds decide on it.
func (l *Lot) validPayment() bool {
	r, d := l.Refund, l.Dispute
	okRefund := r.Amount >= 0 && r.Credits >= 0 && r.Taken >= 0 && r.Removed >= 0 && r.Unrecoverable >= 0 && r.Credits <= MaxBalance &&
		r.Taken <= r.Credits && r.Removed <= r.Credits && r.Unrecoverable <= r.Credits && r.Taken+r.Removed+r.Unrecoverable <= r.Credits &&
		l.Removed >= 0 && l.Removed <= MaxBalance && r.Removed <= l.Removed
	okDispute := d == Dispute{} || ValidReference(d.ID) && d.Credits >= 0 && d.Credits <= MaxBalance && d.Created >= 0 &&
		(d.Status == DisputeOpen || d.Status == DisputeWon || d.Status == DisputeLost)
	return (l.Payment == "" || ValidReference(l.Payment)) && okRefund && okDispute
}

// paymentLot is the index of the one lot that names payment.
func (a *Account) paymentLot(payment string) (int, error) {
	found := -1
	for i := range a.Lots {
		if a.Lots[i].Payment != payment {
			continue
		}
		if found >= 0 {
			return -1, ErrPaymentAmbiguous
		}
		found = i
	}
	if found < 0 {
		return -1, ErrPaymentNotFound
	}
	return found, nil
}

// historyReference is what the history names a lot's refund or dispute by: its purchase's
// Checkout Session, or the lot's ID when its reference cannot go into the history.
func (l *Lot) historyReference() string {
	if ValidReference(l.Reference) {
		return l.Reference
	}
	return l.ID
}

// refundShare is ceil(credits × refunded / amount), without overflow; refunded ≤ amount.
func refundShare(credits, refunded, amount int64) int64 {
	switch { // never: both are checked before (Lot.validPayment, Operation.validPayment)
	case credits <= 0 || refunded <= 0 || amount <= 0:
		return 0
	case refunded >= amount:
		return credits
	}
	hi, lo := bits.Mul64(uint64(credits), uint64(refunded))
	q, rem := bits.Div64(hi, lo, uint64(amount)) // hi < amount: the quotient is at most credits
	if rem > 0 {
		q++
	}
	return int64(q)
}

// refund makes the lot of op.Payment converge to the cumulative refund op.Charge reports;
// applied is false when the lot has followed it already (a redelivery, or a refund older
// than one it has seen).
func (a *Account) refund(op Operation) (applied bool, err error) {
	i, err := a.paymentLot(op.Payment)
	if err != nil {
		return false, err
	}
	if op.Charge.Refunded <= a.Lots[i].Refund.Amount {
		return false, nil
	}
	a.Lots = slices.Clone(a.Lots)
	a.lotsChanged = true
	l := &a.Lots[i]
	r := l.Refund
	target := max(refundShare(l.Credits, op.Charge.Refunded, op.Charge.Amount), r.Credits)
	owed := target - r.Credits
	taken := min(owed, l.Remaining)
	l.Remaining -= taken
	a.Available -= taken
	// What a dispute keeps is off the balance already: the refund takes its share from it,
	// so that a dispute won later does not return credits the refund took back.
	var fromDispute int64
	if l.Dispute.holding() {
		fromDispute = min(owed-taken, l.Dispute.Credits)
		l.Dispute.Credits -= fromDispute
	}
	// What a void or the lot's expiry removed was never spent: gone already, it covers
	// the refund (each credit once), and is not unrecoverable.
	gone := min(owed-taken-fromDispute, max(0, l.Removed-r.Removed))
	claim := min(owed-taken-fromDispute-gone, max(0, a.held(l.ID)-r.claimed())) // the holds' share, settled when they close
	lost := owed - taken - fromDispute - gone - claim
	l.Refund = Refund{Amount: op.Charge.Refunded, Credits: target, Taken: r.Taken + taken + fromDispute, Removed: r.Removed + gone,
		Unrecoverable: r.Unrecoverable + lost}
	if owed > 0 {
		// Its entry says what it took, from the lot and from the dispute alike: what the
		// lot's refund counts as taken.
		a.note(LotChange{Lot: l.ID, Credits: taken + fromDispute, Why: Refunded, Reference: l.historyReference(), Unrecoverable: lost,
			FromDispute: fromDispute, Removed: gone})
	}
	return true, nil
}

// dispute records a dispute of op.Payment opened, won or lost. The lot records one
// dispute, and a payment may have several (an inquiry, then a chargeback): the lot follows
// the newest (Dispute.newer), so that deliveries converge whatever their order. A lost
// dispute, whichever it is, is final: it keeps what the lot's dispute took and takes what
// is left; nothing after it returns anything (the money is gone). Events of a dispute
// older than the one the lot follows change nothing (a late "created" of an inquiry
// closed since, or its win while a chargeback is open). A win of the dispute the lot
// follows, or of a newer one while an older one is open, returns what was taken, once; a
// newer dispute's opening replaces the one followed, keeping what it took. A status a
// dispute already has, or a late "created" after its close, changes nothing; a close
// before its creation was seen decides as both would.
func (a *Account) dispute(op Operation) (applied bool, err error) {
	i, err := a.paymentLot(op.Payment)
	if err != nil {
		return false, err
	}
	d, id, created := a.Lots[i].Dispute, op.Charge.Dispute, op.Charge.DisputeCreated
	same := d.ID == id
	if same {
		created = max(created, d.Created) // a record from before creation times were kept
	}
	switch status := op.Charge.DisputeStatus; {
	case d.Status == DisputeLost:
		return false, nil // a loss is final: whatever comes after it changes nothing
	case status == DisputeLost && same && d.Status == DisputeOpen:
		a.setDispute(i, Dispute{ID: id, Status: DisputeLost, Credits: d.Credits, Created: created})
		a.note(LotChange{Lot: a.Lots[i].ID, Why: LostDispute, Reference: a.Lots[i].historyReference()})
	case status == DisputeLost:
		a.takeForDispute(i, Dispute{ID: id, Status: DisputeLost, Created: created}) // another one, one closed won before, or unseen
	case same && (status == DisputeOpen || d.Status != DisputeOpen):
		return false, nil // a repeat, a late "created", or a dispute closed already
	case same:
		return true, a.reinstate(i, Dispute{ID: id, Status: DisputeWon, Credits: d.Credits, Created: created})
	case d.Status != "" && !d.newer(id, created):
		return false, nil // an older dispute than the one the lot follows
	case status == DisputeWon && d.Status == DisputeOpen:
		return true, a.reinstate(i, Dispute{ID: id, Status: DisputeWon, Credits: d.Credits, Created: created}) // a newer one won
	case status == DisputeWon:
		a.setDispute(i, Dispute{ID: id, Status: DisputeWon, Created: created}) // won before its creation was seen: nothing to take
	default: // a newer one opened
		a.takeForDispute(i, Dispute{ID: id, Status: DisputeOpen, Created: created})
	}
	return true, nil
}

// takeForDispute makes lot i follow next, opened or lost: what is left of the lot is
// taken, and what an open dispute it replaces took stays taken.
func (a *Account) takeForDispute(i int, next Dispute) {
	if d := a.Lots[i].Dispute; d.Status == DisputeOpen {
		next.Credits = d.Credits
	}
	a.setDispute(i, next)
	l := &a.Lots[i]
	n := l.Remaining
	l.Remaining, l.Dispute.Credits = 0, l.Dispute.Credits+n
	a.Available -= n
	a.note(LotChange{Lot: l.ID, Credits: n, Why: Disputed, Reference: l.historyReference()})
	if next.Status == DisputeLost {
		a.note(LotChange{Lot: l.ID, Why: LostDispute, Reference: l.historyReference()})
	}
}

// setDispute sets lot i's dispute.
func (a *Account) setDispute(i int, d Dispute) {
	a.Lots = slices.Clone(a.Lots)
	a.Lots[i].Dispute = d
	a.lotsChanged = true
}

// reinstate closes lot i's open dispute as won (won: the dispute the lot follows after)
// and returns what it took, once. A lot voided or expired meanwhile gets nothing back, as
// a hold's return to it would not: those credits are removed (Lot.Removed), as the hold's
// would be.
func (a *Account) reinstate(i int, won Dispute) error {
	d := a.Lots[i].Dispute
	l := a.Lots[i]
	back := min(d.Credits, max(0, l.Credits-l.Remaining))
	if l.Closed != "" {
		back = 0
	}
	if a.Available > MaxBalance-a.Held()-back {
		return ErrBalanceOverflow
	}
	a.setDispute(i, won)
	a.Lots[i].Remaining += back
	a.Available += back
	if l.Closed != "" {
		a.Lots[i].remove(d.Credits)
	}
	a.note(LotChange{Lot: l.ID, Credits: back, Why: Reinstated, Reference: l.historyReference()})
	return nil
}

// reclaim takes from n credits a hold returns to l what a refund claims of them and, while
// a dispute holds the lot, the rest; it returns what is left to give back.
func (a *Account) reclaim(l *Lot, n int64) int64 {
	if c := l.Refund.claimed(); c > 0 && n > 0 {
		t := min(n, c)
		l.Refund.Taken += t
		n -= t
		a.note(LotChange{Lot: l.ID, Credits: t, Why: Refunded, Reference: l.historyReference()})
	}
	if l.Dispute.holding() && n > 0 {
		l.Dispute.Credits += n
		a.note(LotChange{Lot: l.ID, Credits: n, Why: Disputed, Reference: l.historyReference()})
		n = 0
	}
	return n
}

// settleClaims makes unrecoverable what refunds claim of holds beyond what the holds still
// keep of each lot: the holds that kept them spent them (or were removed by hand).
func (a *Account) settleClaims() {
	for i := range a.Lots {
		c := a.Lots[i].Refund.claimed()
		if c <= 0 {
			continue
		}
		lost := c - a.held(a.Lots[i].ID)
		if lost <= 0 {
			continue
		}
		a.Lots = slices.Clone(a.Lots)
		a.lotsChanged = true
		l := &a.Lots[i]
		l.Refund.Unrecoverable += lost
		a.note(LotChange{Lot: l.ID, Why: Refunded, Reference: l.historyReference(), Unrecoverable: lost})
	}
}

// keptPurchases are the spent purchase lots compactLots keeps: those whose open dispute
// may return credits (live lots: counted in MaxLots, so beside the MaxKeptPurchases;
// closed, its win would return nothing), then those under an open dispute, then the
// newest granted within PurchaseRefundWindow of now, MaxKeptPurchases of these. A
// purchase whose credits open holds keep (held: heldByLot) is not spent: it is live,
// counted in MaxLots and kept until its holds end, so it takes none of those places.
func (a *Account) keptPurchases(now time.Time, held map[string]int64) map[string]bool {
	var spent []*Lot
	kept := map[string]bool{}
	for i := range a.Lots {
		l := &a.Lots[i]
		switch {
		case l.Payment == "" || l.Closed != "" || l.Remaining != 0 || held[l.ID] > 0:
		case l.Dispute.returnable():
			kept[l.ID] = true
		case l.Dispute.Status == DisputeOpen || now.Sub(l.GrantedAt) < PurchaseRefundWindow:
			spent = append(spent, l)
		}
	}
	if len(spent) == 0 {
		return kept
	}
	slices.SortStableFunc(spent, func(x, y *Lot) int {
		if ox, oy := x.Dispute.Status == DisputeOpen, y.Dispute.Status == DisputeOpen; ox != oy {
			if ox {
				return -1
			}
			return 1
		}
		return y.GrantedAt.Compare(x.GrantedAt) // newest first
	})
	for _, l := range spent[:min(len(spent), MaxKeptPurchases)] {
		kept[l.ID] = true
	}
	return kept
}
