package account

import (
	"slices"
	"strconv"
	"time"
)

// spendingOrder is the indices of a's lots in the order they are spent.
func (a *Account) spendingOrder() []int {
	order := make([]int, len(a.Lots))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int { return before(&a.Lots[i], &a.Lots[j]) })
	return order
}

// Spendable is how many credits can be spent or held at now: the available credits but
// those of lots whose time is up and that the controller (or the next write) has not yet
// removed.
func (a Account) Spendable(now time.Time) int64 {
	n := a.Available
	for i := range a.Lots {
		if l := &a.Lots[i]; !l.spendable(now) {
			n -= l.Remaining
		}
	}
	return n
}

// lot is the index of the lot id, or -1.
func (a *Account) lot(id string) int {
	return slices.IndexFunc(a.Lots, func(l Lot) bool { return l.ID == id })
}

// take takes n spendable credits out of the lots, in spending order, and says from which.
// The caller has checked that n are spendable.
func (a *Account) take(n int64, now time.Time) []LotCredits {
	a.Lots = slices.Clone(a.Lots)
	var from []LotCredits
	for _, i := range a.spendingOrder() {
		l := &a.Lots[i]
		if n == 0 {
			break
		}
		if !l.spendable(now) || l.Remaining == 0 {
			continue
		}
		part := min(n, l.Remaining)
		l.Remaining, n = l.Remaining-part, n-part
		from = append(from, LotCredits{Lot: l.ID, Credits: part})
	}
	a.Available -= sumCredits(from)
	a.lotsChanged = true
	return from
}

// give returns credits a hold took to their lots: available again, or removed when their
// lot has since been voided or has expired (recorded as a change), or claimed by a refund
// or dispute of the lot's payment (reclaim). A lot no longer there (removed by hand) gets
// them back as the balance lot.
func (a *Account) give(from []LotCredits, now time.Time) {
	a.Lots = slices.Clone(a.Lots)
	for _, part := range from {
		i := a.lot(part.Lot)
		if i < 0 {
			// Removed by hand: the credits are the balance lot's, and go with it when it was
			// voided meanwhile (only a set or a purchase opens a voided balance lot again).
			if i = a.lot(BalanceLotID); i < 0 || a.Lots[i].Closed == "" {
				i = a.balanceLot(now)
			}
		}
		l := &a.Lots[i]
		n := a.reclaim(l, part.Credits)
		switch {
		case n == 0:
		case l.Closed == lotVoided || l.Closed == lotExpired:
			l.remove(n)
			a.note(LotChange{Lot: l.ID, Credits: n, Why: l.Closed})
		case l.expired(now):
			l.remove(n)
			a.note(LotChange{Lot: l.ID, Credits: n, Why: lotExpired})
		default: // open, or closed as spent (which no hold can have taken from: a hand edit)
			l.Closed, l.ClosedAt = "", time.Time{}
			l.Remaining += n
			a.Available += n
			// A hand edit raised the lot's remaining while the hold kept some of it (the
			// apiserver cannot see holds): the edit gave those credits, and the lot's credits
			// grow with what comes back rather than the record breaking its own invariant.
			l.Credits = max(l.Credits, l.Remaining)
		}
	}
	a.lotsChanged = true
}

// note records a change of a lot for the history, Events and metrics.
func (a *Account) note(c LotChange) { a.changes = append(slices.Clip(a.changes), c) }

// balanceLot is the index of the balance lot, added empty when there is none, and opened
// again when it was voided: a set or a purchase after a void of the balance lot adds to
// it, and credits a hold took from it before the void then come back to it too.
func (a *Account) balanceLot(now time.Time) int {
	i := a.lot(BalanceLotID)
	if i < 0 {
		a.Lots = append(a.Lots, Lot{ID: BalanceLotID, Priority: DefaultPriority, Source: SourceSet, GrantedAt: now.Truncate(time.Second)})
		return len(a.Lots) - 1
	}
	if l := &a.Lots[i]; l.Closed != "" {
		l.Closed, l.ClosedAt = "", time.Time{}
	}
	return i
}

// expireLots removes what is left of the lots whose time is up, and reports whether it
// removed anything.
func (a *Account) expireLots(now time.Time) bool {
	due := false
	for i := range a.Lots {
		if l := &a.Lots[i]; l.Closed == "" && l.expired(now) {
			due = true
		}
	}
	if !due {
		return false
	}
	a.Lots = slices.Clone(a.Lots)
	for i := range a.Lots {
		l := &a.Lots[i]
		if l.Closed != "" || !l.expired(now) {
			continue
		}
		if l.Remaining > 0 { // all of it held: its hold's return removes them (give)
			a.note(LotChange{Lot: l.ID, Credits: l.Remaining, Why: lotExpired})
		}
		a.Available -= l.Remaining
		l.remove(l.Remaining)
		l.Remaining, l.Closed, l.ClosedAt = 0, lotExpired, now.Truncate(time.Second)
	}
	a.lotsChanged = true
	return true
}

// held is how many credits the open holds took from lot id.
func (a *Account) held(id string) int64 {
	var n int64
	for _, h := range a.Holds {
		for _, part := range h.from() {
			if part.Lot == id {
				n += part.Credits
			}
		}
	}
	return n
}

// compactLots closes the grants spent to nothing (nothing left, nothing held) and keeps
// the last MaxClosedLots closed lots with nothing held, which a void is told about (409,
// not 404); the oldest closed go first. A closed lot a hold took from is kept until the
// hold returns its credits (give removes them). A spent purchase a refund or dispute may
// still come for (keptPurchases) stays open, besides those. The balance lot is not a
// grant: with nothing left or held it is dropped (a set or a hold's return adds it again).
func (a *Account) compactLots(now time.Time) {
	held := a.heldByLot()
	refundable := a.keptPurchases(now, held)
	spent := func(l *Lot) bool { return l.Closed == "" && l.Remaining == 0 && held[l.ID] == 0 }
	var dead []int // closed, with nothing held
	changed := false
	for i := range a.Lots {
		l := &a.Lots[i]
		if spent(l) && l.ID != BalanceLotID && !refundable[l.ID] {
			if !changed {
				a.Lots, changed = slices.Clone(a.Lots), true
				l = &a.Lots[i]
			}
			l.Closed, l.ClosedAt = lotSpent, now.Truncate(time.Second)
		}
		if l.Closed != "" && held[l.ID] == 0 {
			dead = append(dead, i)
		}
	}
	drop := map[int]bool{}
	if i := a.lot(BalanceLotID); i >= 0 && spent(&a.Lots[i]) {
		drop[i] = true
	}
	if len(dead) > MaxClosedLots {
		slices.SortStableFunc(dead, func(i, j int) int { return a.Lots[i].ClosedAt.Compare(a.Lots[j].ClosedAt) })
		for _, i := range dead[:len(dead)-MaxClosedLots] {
			drop[i] = true
		}
	}
	if len(drop) > 0 {
		kept := make([]Lot, 0, len(a.Lots)-len(drop))
		for i, l := range a.Lots {
			if !drop[i] {
				kept = append(kept, l)
			}
		}
		a.Lots, changed = kept, true
	}
	if changed {
		a.lotsChanged = true
	}
}

// heldByLot is how many credits the open holds took from each lot.
func (a *Account) heldByLot() map[string]int64 {
	held := map[string]int64{}
	for _, h := range a.Holds {
		for _, part := range h.from() {
			held[part.Lot] += part.Credits
		}
	}
	return held
}

// set makes the available balance n: more goes to the balance lot, less is taken from the
// lots in spending order (a set is a correction of the balance, so lots that expire keep
// their terms).
func (a *Account) set(n int64, now time.Time) error {
	switch {
	case n > MaxBalance-a.Held():
		return ErrBalanceOverflow
	case n < a.Available:
		a.take(a.Available-n, now)
	case n > a.Available:
		a.Lots = slices.Clone(a.Lots)
		i := a.balanceLot(now)
		if l := &a.Lots[i]; l.Closed != "" {
			// The balance lot was voided (a closed lot keeps no credits): the set makes
			// the balance what it says, and the balance lot is open again to hold it.
			l.Closed, l.ClosedAt = "", time.Time{}
		}
		a.Lots[i].Remaining += n - a.Available
		a.Available = n
		a.lotsChanged = true
	}
	return nil
}

// grant adds op's credits as a lot of its own, with op's terms, and says which. With
// MaxLots live grants already, one that names nothing (no Checkout Session, no CreditGrant:
// those stay lots of their own, to be refunded or voided alone) joins the newest open lot
// of the very same terms that names nothing either; a purchase joins the balance lot (paid
// credits are never refused for a bound: the history and its Event still name the
// Checkout Session, but no lot names its PaymentIntent, so a refund of it is unmatched);
// any other is refused.
func (a *Account) grant(op Operation, now time.Time) (historyEntry, string, error) {
	t := op.Terms
	expires, _ := StoredExpiry(t.ExpiresAt) // valid: checked with the operation
	switch {
	case a.Available > MaxBalance-a.Held()-op.Amount:
		return historyEntry{}, "", ErrBalanceOverflow
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		return historyEntry{}, "", ErrGrantExpired
	}
	lot := Lot{ID: t.ID, Credits: op.Amount, Remaining: op.Amount, ExpiresAt: expires, Priority: t.priority(),
		Source: t.Source, Reference: t.Reference, Reason: t.Reason, GrantedAt: now.Truncate(time.Second)}
	entry := historyEntry{kind: OpGrant, credits: op.Amount}
	switch {
	case op.Purchase != "":
		lot.Source, lot.Reference, lot.Payment = SourceStripe, op.Purchase, op.Payment
		entry.kind, entry.reference = KindPurchase, op.Purchase
	case lot.Source == "":
		lot.Source = SourceAPI
	}
	a.Lots = slices.Clone(a.Lots)
	a.Available += op.Amount
	a.lotsChanged = true
	if a.liveLots() >= MaxLots {
		if op.Purchase != "" {
			l := &a.Lots[a.balanceLot(now)]
			l.Remaining += op.Amount
			return entry, l.ID, nil
		}
		for j := len(a.Lots) - 1; j >= 0; j-- {
			if l := &a.Lots[j]; l.Closed == "" && l.Reference == "" && lot.Reference == "" && l.Source == lot.Source &&
				l.Priority == lot.Priority && l.ExpiresAt.Equal(lot.ExpiresAt) && l.Reason == lot.Reason && l.ID != BalanceLotID {
				l.Credits, l.Remaining = l.Credits+op.Amount, l.Remaining+op.Amount
				return entry, l.ID, nil
			}
		}
		return historyEntry{}, "", ErrTooManyLots
	}
	if lot.ID == "" || a.lot(lot.ID) >= 0 {
		lot.ID = a.freeLotID()
	}
	a.Lots = append(a.Lots, lot)
	return entry, lot.ID, nil
}

// freeLotID is an ID no lot of a has: the store names lots itself (before any attempt, so
// that a retry keeps it); this is for callers that do not.
func (a *Account) freeLotID() string {
	for n := a.history.seq + 1; ; n++ {
		if id := "lot-" + strconv.FormatInt(n, 10); a.lot(id) < 0 {
			return id
		}
	}
}

// void removes what is left of lot id (credits it has held are removed when their hold
// returns them); spent credits stay spent.
func (a *Account) void(id string, now time.Time) (historyEntry, error) {
	i := a.lot(id)
	switch {
	case i < 0:
		return historyEntry{}, ErrLotNotFound
	case a.Lots[i].Closed != "" || a.Lots[i].Remaining == 0 && a.held(id) == 0:
		return historyEntry{}, ErrLotClosed
	}
	a.Lots = slices.Clone(a.Lots)
	l := &a.Lots[i]
	entry := historyEntry{kind: OpVoid, credits: l.Remaining, reference: l.ID}
	a.Available -= l.Remaining
	l.remove(l.Remaining)
	l.Remaining, l.Closed, l.ClosedAt = 0, lotVoided, now.Truncate(time.Second)
	a.lotsChanged = true
	return entry, nil
}

// liveLots counts the grants with credits left or held (the balance lot aside), or to be
// returned by a dispute that may yet be won: those a grant finds in MaxLots. A closed lot
// whose credits a hold still has counts: it is kept until the hold ends.
func (a *Account) liveLots() int {
	return liveLots(a.Lots, a.heldByLot())
}

func liveLots(lots []Lot, held map[string]int64) int {
	n := 0
	for i := range lots {
		if l := &lots[i]; l.ID != BalanceLotID && (l.Remaining > 0 || held[l.ID] > 0 || l.Closed == "" && l.Dispute.returnable()) {
			n++
		}
	}
	return n
}

// Grants are the lots with credits left at now, to spend or held, in spending order.
func (a Account) Grants(now time.Time) []GrantView {
	var out []GrantView
	for _, i := range a.spendingOrder() {
		l := a.Lots[i]
		if !l.spendable(now) || l.Remaining+a.held(l.ID) == 0 {
			continue
		}
		out = append(out, GrantView{Lot: l, Held: a.held(l.ID)})
	}
	return out
}

// GrantView is a lot as GET /api/credits/grants shows it: with what open holds keep of it.
type GrantView struct {
	Lot
	Held int64
}

// NextLotExpiry is when the next lot with credits left expires and how many of its credits
// it still has; zero when none expires.
func (a Account) NextLotExpiry() (time.Time, int64) {
	var next time.Time
	var credits int64
	for i := range a.Lots {
		l := &a.Lots[i]
		if l.Closed != "" || l.ExpiresAt.IsZero() || l.Remaining == 0 {
			continue
		}
		switch {
		case next.IsZero() || l.ExpiresAt.Before(next):
			next, credits = l.ExpiresAt, l.Remaining
		case l.ExpiresAt.Equal(next):
			credits += l.Remaining
		}
	}
	return next, credits
}

// Changes are the credits the decisions that made a removed from lots (expired, voided,
// refunded, disputed) or returned to them (a won dispute).
func (a Account) Changes() []LotChange { return slices.Clone(a.changes) }
