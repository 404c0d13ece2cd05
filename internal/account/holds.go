package account

import (
	"slices"
	"time"
)

// reserve takes op.Amount out of the available balance into a new hold.
func (a *Account) reserve(op Operation, now time.Time) error {
	switch {
	case a.Spendable(now) < op.Amount:
		return ErrInsufficientCredits
	case len(a.Holds) >= MaxOpenHolds:
		return ErrTooManyReservations
	case slices.ContainsFunc(a.Holds, func(h Hold) bool { return h.ID == op.ReservationID }):
		return ErrInvalidOperation // hold IDs are random: a repeat is a bug, never a second hold
	}
	from := a.take(op.Amount, now)
	if holdLots(a.Holds)+len(from) > MaxHoldLots {
		return ErrTooManyReservations // the holds would record too many lots: refused, as more holds are
	}
	if len(from) == 1 && from[0].Lot == BalanceLotID {
		from = nil // the balance lot: what a hold without lots means
	}
	// Stored to the second (RFC 3339): rounded up, so that no hold ends before its TTL.
	expires, _ := StoredExpiry(now.Add(op.TTL))
	a.Holds = append(slices.Clone(a.Holds), Hold{ID: op.ReservationID, Credits: op.Amount, ExpiresAt: expires, From: from})
	a.holdsChanged = true
	return nil
}

// closing is what closing a hold came to: the history entry of a close, or the answer of
// a repeat of one.
type closing struct {
	entry  historyEntry
	replay *Result
}

// close ends the open hold op names: capture (spend what op says, return the rest),
// release, or expire (return it all). due is false when there is nothing to do: an expiry
// of a hold that is not due, or no longer open. A hold already closed answers as its
// closing did when op repeats it.
func (a *Account) close(op Operation, now time.Time) (closing, bool, error) {
	i := slices.IndexFunc(a.Holds, func(h Hold) bool { return h.ID == op.ReservationID })
	if i < 0 {
		return a.closedBefore(op, now)
	}
	hold := a.Holds[i]
	expired := !now.Before(hold.ExpiresAt)
	switch {
	case op.Kind == OpExpire && !expired:
		return closing{}, false, nil
	case op.Kind != OpExpire && expired:
		return closing{}, false, ErrReservationExpired // the controller returns it within seconds
	}
	closed := closedHold{ID: hold.ID, Held: hold.Credits, At: now.Unix()}
	returned := hold.from()
	var c closing
	switch op.Kind {
	case OpCapture:
		captured := op.Amount
		if op.CaptureAll {
			captured = hold.Credits
		}
		if captured > hold.Credits {
			return closing{}, false, ErrInvalidOperation
		}
		closed.State, closed.Captured, returned = closedCaptured, captured, a.spendFrom(hold.from(), captured)
		c.entry = historyEntry{kind: OpCapture, credits: captured}
	case OpRelease:
		closed.State = closedReleased
		c.entry = historyEntry{kind: OpRelease, credits: hold.Credits}
	default:
		closed.State = closedExpired
		c.entry = historyEntry{kind: OpExpire, credits: hold.Credits}
	}
	a.Holds, a.holdsChanged = slices.Delete(slices.Clone(a.Holds), i, i+1), true
	a.give(returned, now) // within MaxBalance: available and held never exceed it together
	closed.Result = a.Available
	a.closed = a.closed.with(closed, now)
	return c, true, nil
}

// closedBefore answers a capture, release or expiry of a hold that is not open: a repeat of
// how it was closed is a replay of that answer; anything else is refused as the hold's end
// says. A capture repeats a capture of the same amount, the whole hold counting as its
// amount: capturing 0 and then capturing "all" of a hold of 5 are two different requests.
func (a *Account) closedBefore(op Operation, now time.Time) (closing, bool, error) {
	if op.Kind == OpExpire {
		return closing{}, false, nil // closed already, or never was
	}
	c, found := a.closed.find(op.ReservationID, now)
	if !found {
		return closing{}, false, ErrReservationNotFound
	}
	captured := op.Amount
	if op.CaptureAll {
		captured = c.Held
	}
	switch {
	case c.State == closedExpired:
		return closing{}, false, ErrReservationExpired
	case c.State == closedCaptured && op.Kind == OpCapture && captured == c.Captured,
		c.State == closedReleased && op.Kind == OpRelease:
		return closing{replay: &Result{Credits: c.Result, Replayed: true}}, true, nil
	case c.State == closedCaptured:
		return closing{}, false, ErrReservationCaptured
	default:
		return closing{}, false, ErrReservationReleased
	}
}

// spendFrom spends n of a hold's credits, from its lots in spending order, and returns
// what is left of each, to give back.
func (a *Account) spendFrom(from []LotCredits, n int64) []LotCredits {
	parts := slices.Clone(from)
	order := func(p LotCredits) *Lot {
		if i := a.lot(p.Lot); i >= 0 {
			return &a.Lots[i]
		}
		return &Lot{ID: p.Lot, Priority: MaxPriority + 1} // gone by hand: spent last
	}
	slices.SortStableFunc(parts, func(x, y LotCredits) int { return before(order(x), order(y)) })
	var left []LotCredits
	for _, p := range parts {
		spent := min(n, p.Credits)
		n -= spent
		if p.Credits > spent {
			left = append(left, LotCredits{Lot: p.Lot, Credits: p.Credits - spent})
		}
	}
	return left
}

// holdLots counts the lots the holds took credits from, together.
func holdLots(holds []Hold) int {
	n := 0
	for _, h := range holds {
		n += len(h.From)
	}
	return n
}
