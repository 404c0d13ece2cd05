package credits

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// ClosedReservationsAnnotation remembers how each recently closed hold ended, so that a
// repeated capture or release answers what the first one did, and a late one gets the
// right refusal. Written in the same update as the balance the closing changed.
const ClosedReservationsAnnotation = "credits.gitread.dev/closed-reservations"

// Retention of closed holds: none older than ClosedReservationsMaxAge, at most
// ClosedReservationsMaxEntries. After that, the hold is unknown (404).
const (
	ClosedReservationsMaxAge     = 24 * time.Hour
	ClosedReservationsMaxEntries = 200
)

// How a hold ended.
const (
	closedCaptured = "captured"
	closedReleased = "released"
	closedExpired  = "expired"
)

// closedReservation is one entry of ClosedReservationsAnnotation.
type closedReservation struct {
	ID       string `json:"id"`
	State    string `json:"s"`
	Held     int64  `json:"h"`
	Captured int64  `json:"c,omitempty"`
	Result   int64  `json:"r"` // the available balance the closing answered
	At       int64  `json:"t"` // unix seconds
}

func parseClosed(value string, now time.Time) []closedReservation {
	var entries []closedReservation
	if value == "" || json.Unmarshal([]byte(value), &entries) != nil {
		return nil
	}
	cutoff := now.Add(-ClosedReservationsMaxAge).Unix()
	return slices.DeleteFunc(entries, func(e closedReservation) bool { return e.At < cutoff })
}

func encodeClosed(entries []closedReservation) string {
	if len(entries) > ClosedReservationsMaxEntries {
		entries = entries[len(entries)-ClosedReservationsMaxEntries:]
	}
	data, _ := json.Marshal(entries) // cannot fail: plain structs
	return string(data)
}

// reserve takes op.Amount out of the available balance into a new hold.
func (d *decision) reserve(op Operation, now time.Time) error {
	switch {
	case d.credits < op.Amount:
		return ErrInsufficientCredits
	case len(d.reservations) >= creditsv1alpha1.MaxOpenReservations:
		return ErrTooManyReservations
	}
	d.credits -= op.Amount
	// Stored to the second (RFC 3339): rounded up, so that no hold ends before its TTL.
	expires := now.Add(op.TTL)
	if rounded := expires.Truncate(time.Second); rounded.Before(expires) {
		expires = rounded.Add(time.Second)
	}
	d.reservations = append(slices.Clone(d.reservations), creditsv1alpha1.Reservation{
		ID: op.ReservationID, Credits: op.Amount, ExpiresAt: metav1.NewTime(expires),
	})
	d.result.ReservationID, d.holdsChanged = op.ReservationID, true
	d.entry = historyEntry{kind: OpReserve, credits: op.Amount}
	return nil
}

// close ends the open hold op names: capture (spend what op says, return the rest),
// release, or expire (return it all). A hold already closed answers as its closing did.
func (d *decision) close(op Operation, annotations map[string]string, now time.Time) error {
	i := slices.IndexFunc(d.reservations, func(r creditsv1alpha1.Reservation) bool { return r.ID == op.ReservationID })
	if i < 0 {
		return d.closedBefore(op, annotations, now)
	}
	hold := d.reservations[i]
	expired := !now.Before(hold.ExpiresAt.Time)
	switch {
	case op.Kind == OpExpire && !expired:
		d.noop = true // not due yet
		return nil
	case op.Kind != OpExpire && expired:
		return ErrReservationExpired // the controller returns it within seconds
	}
	closed := closedReservation{ID: hold.ID, Held: hold.Credits, At: now.Unix()}
	returned := hold.Credits
	switch op.Kind {
	case OpCapture:
		captured := op.Amount
		if op.CaptureAll {
			captured = hold.Credits
		}
		if captured > hold.Credits {
			return ErrInvalidOperation
		}
		closed.State, closed.Captured, returned = closedCaptured, captured, hold.Credits-captured
		d.entry = historyEntry{kind: OpCapture, credits: captured}
	case OpRelease:
		closed.State = closedReleased
		d.entry = historyEntry{kind: OpRelease, credits: hold.Credits}
	default:
		closed.State = closedExpired
		d.entry = historyEntry{kind: OpExpire, credits: hold.Credits}
	}
	if d.credits > MaxBalance-returned {
		return ErrBalanceOverflow
	}
	d.credits += returned
	d.reservations, d.holdsChanged = slices.Delete(slices.Clone(d.reservations), i, i+1), true
	closed.Result = d.credits
	d.set(ClosedReservationsAnnotation, encodeClosed(append(parseClosed(annotations[ClosedReservationsAnnotation], now), closed)))
	return nil
}

// closedBefore answers a capture, release or expiry of a hold that is not open.
func (d *decision) closedBefore(op Operation, annotations map[string]string, now time.Time) error {
	entries := parseClosed(annotations[ClosedReservationsAnnotation], now)
	i := slices.IndexFunc(entries, func(e closedReservation) bool { return e.ID == op.ReservationID })
	if op.Kind == OpExpire {
		d.noop = true // closed already, or never was
		return nil
	}
	if i < 0 {
		return ErrReservationNotFound
	}
	c := entries[i]
	replay := func() error {
		d.result, d.noop = Result{Credits: c.Result, Replayed: true}, true
		return nil
	}
	switch {
	case c.State == closedExpired:
		return ErrReservationExpired
	case c.State == closedCaptured && op.Kind == OpCapture && (op.CaptureAll && c.Captured == c.Held || op.Amount == c.Captured):
		return replay()
	case c.State == closedReleased && op.Kind == OpRelease:
		return replay()
	case c.State == closedCaptured:
		return ErrReservationCaptured
	default:
		return ErrReservationReleased
	}
}

// Reserved sums the credits of open holds.
func Reserved(holds []creditsv1alpha1.Reservation) int64 {
	var n int64
	for _, h := range holds {
		n += h.Credits
	}
	return n
}

// NextExpiry is when the first of holds expires; zero when there are none.
func NextExpiry(holds []creditsv1alpha1.Reservation) time.Time {
	var next time.Time
	for _, h := range holds {
		if next.IsZero() || h.ExpiresAt.Time.Before(next) {
			next = h.ExpiresAt.Time
		}
	}
	return next
}

// Expire returns userID's hold reservationID to the balance if its time is up, and does
// nothing otherwise. The controller calls it when a hold is due.
func (s *Store) Expire(ctx context.Context, userID, reservationID string) error {
	_, err := s.Apply(ctx, userID, Operation{Kind: OpExpire, ReservationID: reservationID})
	return err
}

// newReservationID is a fresh hold ID: "rsv_" and 16 random hex digits.
func newReservationID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	return "rsv_" + hex.EncodeToString(b[:])
}
