// Package account is one user's credits as one type: the available balance, the open
// holds, the recently closed holds, the applied Idempotency-Keys, the history and the write
// sequence, decoded once from the user's UserCredits object and encoded back into it. Every
// decision is a pure method on Account: given an operation and the time, the account after
// it and the answer. Every invariant is checked in one place (Account.check), on decode and
// before every encode. Nothing here reads or writes the apiserver; internal/credits does
// that around it.
//
// Files, top to bottom (a file uses only those below it):
//
//   - cacheform.go, codec.go, lotcodec.go, ledgercodec.go: the account to and from its
//     object (spec, annotations: the key ledgers and closed holds as one line of text each),
//     the preconditions of a write, the informer cache's lighter form;
//     gitopskeys.go: the CreditGrant keys a record holds, in either form;
//   - apply.go, holds.go: the decisions (set, consume, grant, reserve, capture, release,
//     expire), one operation or a batch;
//   - settings.go: the rules people set (--grant-key-retention);
//   - account.go: the Account type and its invariants;
//   - keys.go, closed.go, history.go, userid.go: the parts (key ledgers, closed holds, the
//     history ring) and user IDs; imported.go: what an import recorded on the object;
//   - operation.go, ids.go: operations, answers, errors, limits.
//
// Credit lots (grants with their own expiry and priority, spent in order) are a part of
// their own beside the ledgers: lot.go and lots.go decide them, lotcodec.go stores them, and
// payments.go follows a Stripe purchase's refunds and disputes on its lot.
package account

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// MaxOpenHolds bounds the holds one user may have open at a time (the CRD's maxItems).
const MaxOpenHolds = 100

// Account is one user's state. The zero Account is a user without a record. Decisions
// never change an Account in place: they return a new one that shares what did not change.
type Account struct {
	// UserID is whose account this is.
	UserID UserID
	// Available is the balance the user can spend now; held credits are not part of it.
	Available int64
	// Holds are the open holds, oldest first.
	Holds []Hold
	// Lots are the grants the available credits are part of (lot.go); the sum of their
	// remaining credits is Available.
	Lots []Lot

	closed   closedHolds
	requests keyLedger // keys of every operation but grants
	grants   keyLedger // keys of grants
	history  history
	// writeSeq counts this operator's writes of the record (writes.go in internal/credits
	// tests it); it moves with every write, independently of the history.
	writeSeq int64
	// holdsChanged, lotsChanged: Holds, Lots differ from the stored ones.
	holdsChanged, lotsChanged bool
	// changes lists the credits this account's decisions removed from lots (expired,
	// voided, refunded, disputed) or returned to them, for their history entries, Events
	// and metrics.
	changes []LotChange
	// damage lists stored parts that could not be read (hand edits): each was read as
	// empty, and is rewritten whole when a decision next changes it.
	damage []string
}

// Hold is one open hold.
type Hold struct {
	ID        string
	Credits   int64
	ExpiresAt time.Time
	// From says which lots the credits came from; empty: the balance lot.
	From []LotCredits
}

// from is what h took from which lots.
func (h Hold) from() []LotCredits {
	if len(h.From) == 0 {
		return []LotCredits{{Lot: BalanceLotID, Credits: h.Credits}}
	}
	return h.From
}

// ErrUntrusted means the stored record cannot be served or changed: its balance or holds
// break an invariant, or a part that guards against repeats is damaged. A person must fix it.
var ErrUntrusted = errors.New("untrusted UserCredits record")

// Held is the sum of the open holds.
func (a Account) Held() int64 {
	var n int64
	for _, h := range a.Holds {
		n += h.Credits
	}
	return n
}

// NextExpiry is when the first open hold expires; zero when none is open.
func (a Account) NextExpiry() time.Time {
	var next time.Time
	for _, h := range a.Holds {
		if next.IsZero() || h.ExpiresAt.Before(next) {
			next = h.ExpiresAt
		}
	}
	return next
}

// Due lists the holds whose time is up at now.
func (a Account) Due(now time.Time) []Hold {
	var due []Hold
	for _, h := range a.Holds {
		if !now.Before(h.ExpiresAt) {
			due = append(due, h)
		}
	}
	return due
}

// Damage lists the stored parts that could not be read: they were read as empty.
func (a Account) Damage() []string { return slices.Clone(a.damage) }

// Exists reports whether the account has a stored record, or one of its decisions made one.
func (a Account) Exists() bool { return a.UserID != "" }

// check is every invariant of an account, in one place: on decode (a stored record that
// breaks one is untrusted) and before every encode (a decision that would break one is a
// bug, and is refused rather than stored).
func (a *Account) check() error {
	var errs []error
	if a.Available < 0 {
		errs = append(errs, fmt.Errorf("%d credits available, below zero", a.Available))
	}
	if len(a.Holds) > MaxOpenHolds {
		errs = append(errs, fmt.Errorf("%d open holds, over %d", len(a.Holds), MaxOpenHolds))
	}
	seen := make(map[string]bool, len(a.Holds))
	held, parts := int64(0), 0
	for _, h := range a.Holds {
		if h.Credits < 1 || h.Credits > MaxBalance || !ValidHoldID(h.ID) || seen[h.ID] || (len(h.From) > 0 && sumCredits(h.From) != h.Credits) {
			errs = append(errs, fmt.Errorf("hold %q of %d credits is invalid or repeated", h.ID, h.Credits))
			continue
		}
		seen[h.ID] = true
		held += h.Credits
		parts += len(h.From)
	}
	if parts > MaxHoldLots {
		errs = append(errs, fmt.Errorf("the open holds took from %d lots, over %d", parts, MaxHoldLots))
	}
	errs = append(errs, checkLots(a.Lots, a.Available)...)
	if a.Available > MaxBalance-held || held > MaxBalance {
		errs = append(errs, fmt.Errorf("%d available and %d held exceed the largest balance %d", a.Available, held, int64(MaxBalance)))
	}
	for _, part := range []error{a.requests.check(), a.grants.check()} {
		if part != nil {
			errs = append(errs, part)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	return nil
}

// History is the account's last HistoryLength changes, newest first. Only an account read
// whole from the apiserver holds them all.
func (a Account) History() []Transaction { return a.history.entries() }

// checkLots is the invariants of lots: valid and distinct, their remaining credits adding
// up to the available ones, at most MaxStoredLots-1 of them besides the balance lot (what
// bounds a record's size: how many of them are live, kept purchases or closed is a rule of
// the decisions, lot.go, which a hand edit may break without making the record untrustworthy).
func checkLots(lots []Lot, available int64) []error {
	var errs []error
	seen := make(map[string]bool, len(lots))
	var remaining int64
	grants := 0
	for _, l := range lots {
		if !ValidLotID(l.ID) || seen[l.ID] || l.Remaining < 0 || l.Remaining > MaxBalance || l.Priority < 0 || l.Priority > MaxPriority ||
			l.Credits < 0 || l.Credits > MaxBalance || (l.ID != BalanceLotID && l.Remaining > l.Credits) || (l.Closed != "" && l.Remaining != 0) ||
			!l.validPayment() {
			errs = append(errs, fmt.Errorf("lot %q (%d of %d left) is invalid or repeated", l.ID, l.Remaining, l.Credits))
			continue
		}
		seen[l.ID] = true
		remaining += l.Remaining
		if l.ID != BalanceLotID {
			grants++
		}
	}
	if remaining != available {
		errs = append(errs, fmt.Errorf("the lots hold %d credits, the balance is %d", remaining, available))
	}
	if grants > MaxStoredLots-1 {
		errs = append(errs, fmt.Errorf("%d lots besides the balance lot, over %d", grants, MaxStoredLots-1))
	}
	return errs
}
