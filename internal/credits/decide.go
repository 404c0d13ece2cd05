package credits

import (
	"time"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// decision is what applying an Operation to a user's state comes to.
type decision struct {
	result Result
	// noop: nothing to write (a replay, or an expiry that is not due).
	noop         bool
	credits      int64
	reservations []creditsv1alpha1.Reservation
	// annotations holds the annotations to write: only those that change.
	annotations map[string]string
	// holdsChanged: the decision opens or closes a hold.
	holdsChanged bool
	// entry is what the change adds to the history.
	entry historyEntry
}

func (d *decision) set(annotation, value string) {
	if d.annotations == nil {
		d.annotations = map[string]string{}
	}
	d.annotations[annotation] = value
}

// decide applies op to a user's available balance, open holds and annotations (key
// ledgers, closed holds, history) at time now. It is pure: the store calls it on each
// (re)read of the object, and it is unit-tested alone. A decision that is not a noop is
// written, even a set to the balance it already has: the write tests the state it was
// decided on (writePatch), so the apiserver confirms that state instead of a possibly
// stale cache.
func decide(credits int64, holds []creditsv1alpha1.Reservation, annotations map[string]string, op Operation, now time.Time, grantKeyRetention time.Duration) (decision, error) {
	d := decision{credits: credits, reservations: holds}
	if !op.valid() {
		return d, ErrInvalidOperation
	}
	if op.IdempotencyKey != "" {
		if res, found, err := findKey(annotations, op, now, grantKeyRetention); found || err != nil {
			d.result, d.noop = res, true
			if err != nil {
				d.result = Result{Credits: credits}
			}
			return d, err
		}
	}
	var err error
	switch op.Kind {
	case OpSet:
		d.credits, d.entry = op.Amount, historyEntry{kind: OpSet, credits: op.Amount}
	case OpConsume:
		if credits < op.Amount {
			err = ErrInsufficientCredits
			break
		}
		d.credits, d.entry = credits-op.Amount, historyEntry{kind: OpConsume, credits: op.Amount}
	case OpGrant:
		if credits > MaxBalance-op.Amount {
			err = ErrBalanceOverflow
			break
		}
		d.credits, d.entry = credits+op.Amount, historyEntry{kind: OpGrant, credits: op.Amount}
		if op.Purchase != "" {
			d.entry.kind, d.entry.reference = KindPurchase, op.Purchase
		}
	case OpReserve:
		err = d.reserve(op, now)
	default:
		err = d.close(op, annotations, now)
	}
	if err != nil {
		d.result = Result{Credits: credits}
		return d, err
	}
	if d.noop {
		if !d.result.Replayed {
			d.result = Result{Credits: credits}
		}
		return d, nil
	}
	d.result.Credits = d.credits
	d.appendHistory(annotations, now)
	if op.IdempotencyKey != "" {
		d.set(recordKey(annotations, op, d.result, now, grantKeyRetention))
	}
	return d, nil
}
