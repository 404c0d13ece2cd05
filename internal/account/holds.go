package account

import (
	"slices"
	"time"
)

// reserve takes op.Amount out of the available balance into a new hold.
func (a *Account) reserve(op Operation, now time.Time) error {
	switch {
	case a.Available < op.Amount:
		return ErrInsufficientCredits
	case len(a.Holds) >= MaxOpenHolds:
		return ErrTooManyReservations
	case slices.ContainsFunc(a.Holds, func(h Hold) bool { return h.ID == op.ReservationID }):
		return ErrInvalidOperation // hold IDs are random: a repeat is a bug, never a second hold
	}
	a.Available -= op.Amount
	// Stored to the second (RFC 3339): rounded up, so that no hold ends before its TTL.
	expires := now.Add(op.TTL)
	if rounded := expires.Truncate(time.Second); rounded.Before(expires) {
		expires = rounded.Add(time.Second)
	}
	a.Holds = append(slices.Clone(a.Holds), Hold{ID: op.ReservationID, Credits: op.Amount, ExpiresAt: expires})
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
	returned := hold.Credits
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
		closed.State, closed.Captured, returned = closedCaptured, captured, hold.Credits-captured
		c.entry = historyEntry{kind: OpCapture, credits: captured}
	case OpRelease:
		closed.State = closedReleased
		c.entry = historyEntry{kind: OpRelease, credits: hold.Credits}
	default:
		closed.State = closedExpired
		c.entry = historyEntry{kind: OpExpire, credits: hold.Credits}
	}
	a.Available += returned // within MaxBalance: available and held never exceed it together
	a.Holds, a.holdsChanged = slices.Delete(slices.Clone(a.Holds), i, i+1), true
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
