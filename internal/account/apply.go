package account

import (
	"errors"
	"time"
)

// ErrNeedWholeRecord means a decision needs a part of the record that this account, read
// from the informer cache's lighter form of it, does not hold (the grant keys): decide
// again on the record read whole from the apiserver.
var ErrNeedWholeRecord = errors.New("the decision needs the whole record")

// Apply decides op on a at now: the account after it, and the answer. It is pure; a is not
// changed. A refused operation returns a itself, the answer carrying the credits it was
// judged against. A decision that changes nothing returns changed false: a replay, or an
// expiry that is not due. Every other decision is to be written, even a set to the balance
// it already has: its write tests the state it was decided on, so the apiserver confirms
// that state instead of a possibly stale cache. Lots whose time is up are expired first,
// in the same write.
func (a Account) Apply(op Operation, now time.Time, rules Settings) (next Account, res Result, changed bool, err error) {
	refuse := func(err error) (Account, Result, bool, error) {
		return a, Result{Credits: a.Spendable(now)}, false, err
	}
	if !op.valid() {
		return refuse(ErrInvalidOperation)
	}
	if op.IdempotencyKey != "" {
		res, found, err := a.findKey(op, now, rules)
		switch {
		case errors.Is(err, ErrNeedWholeRecord):
			return refuse(err)
		case found && err != nil:
			return refuse(err)
		case found:
			next = a
			if next.adoptPurchase(op, res) && next.check() == nil {
				return next, res, true, nil // a replay that records the purchase on its lot: written
			}
			return a, res, false, nil
		}
	}
	next = a
	var lotID string
	var followed bool // a refund or dispute the lot had followed already
	before := len(next.changes)
	expired := next.expireLots(now)
	after := len(next.changes)
	entry := historyEntry{kind: op.Kind, credits: op.Amount}
	switch op.Kind {
	case OpRefund, OpDispute:
		var applied bool
		if op.Kind == OpRefund {
			applied, err = next.refund(op)
		} else {
			applied, err = next.dispute(op)
		}
		entry, followed = historyEntry{}, !applied // the lot's changes are the entries
		if err == nil && followed && !expired {
			return a, Result{Credits: a.Spendable(now), Replayed: true}, false, nil
		}
	case OpSet:
		err = next.set(op.Amount, now)
	case OpConsume:
		if next.Spendable(now) < op.Amount {
			err = ErrInsufficientCredits
			break
		}
		next.take(op.Amount, now)
	case OpGrant:
		if i := a.purchased(op); i >= 0 {
			// Its key forgotten (a resend after --grant-key-retention), the purchase is still
			// known by its lot: a replay, never the payment's credits twice.
			return a, Result{Credits: a.Spendable(now), Replayed: true, LotID: a.Lots[i].ID}, false, nil
		}
		entry, lotID, err = next.grant(op, now)
		if err == nil && op.Charge != (ChargeState{}) {
			err = next.followEarly(op) // after the grant: its entries follow the purchase's
		}
	case OpReserve:
		err = next.reserve(op, now)
	case OpVoid:
		entry, err = next.void(op.Terms.ID, now)
	case OpExpire:
		if op.ReservationID == "" { // the lots whose time is up: done above
			if !expired {
				return a, Result{Credits: a.Spendable(now)}, false, nil
			}
			entry = historyEntry{} // the removals are the entries
			break
		}
		fallthrough
	default:
		var closed closing
		var due bool
		closed, due, err = next.close(op, now)
		switch {
		case err != nil:
		case closed.replay != nil:
			return a, *closed.replay, false, nil
		case !due && !expired:
			return a, Result{Credits: a.Spendable(now)}, false, nil
		case !due:
			entry = historyEntry{}
		default:
			entry = closed.entry
		}
	}
	if err != nil {
		return refuse(err)
	}
	res = Result{Credits: next.Available}
	switch op.Kind {
	case OpReserve:
		res.ReservationID = op.ReservationID
	case OpGrant:
		res.LotID = lotID
	}
	res.Replayed = followed // written only for the lots that expired first
	next.settleClaims()
	entries := changeEntries(next.changes[before:after]) // the lots that expired first
	if entry.kind != "" {
		entries = append(entries, entry)
	}
	entries = append(entries, changeEntries(next.changes[after:])...) // refunds, disputes, credits returned to closed lots
	next.compactLots(now)
	for _, e := range entries {
		next.history = next.history.with(e, next.Available, now)
	}
	if op.IdempotencyKey != "" {
		next.recordKey(op, res, now, rules)
	}
	if err := next.check(); err != nil {
		return refuse(err) // a rule above let through what the invariants forbid: a bug, never stored
	}
	return next, res, true, nil
}

// Decision is what a batch of operations comes to on one account.
type Decision struct {
	// Account is the account after every operation that applied.
	Account Account
	// Answers are each operation's result and error, in order.
	Answers []Answer
	// Applied are the operations that change the record, in order; the batch is written
	// when there is at least one.
	Applied []Operation
	// Refused: some operation was refused on what this account showed in a way a newer
	// state of the record could change (not enough credits, a hold it does not show).
	Refused bool
}

// Answer is one operation's result.
type Answer struct {
	Result Result
	Err    error
}

// ApplyAll decides ops in order, each on the account the ones before it left: a group of
// operations written in one write, each answered on its own. userID names the account when
// it has no record yet.
func (a Account) ApplyAll(userID UserID, ops []Operation, now time.Time, rules Settings) Decision {
	d := Decision{Account: a, Answers: make([]Answer, len(ops))}
	if !d.Account.Exists() {
		d.Account.UserID = userID
	}
	for i, op := range ops {
		next, res, changed, err := d.Account.Apply(op, now, rules)
		d.Answers[i] = Answer{Result: res, Err: err}
		if errors.Is(err, ErrInsufficientCredits) || errors.Is(err, ErrReservationNotFound) {
			d.Refused = true
		}
		if changed {
			d.Account = next
			d.Applied = append(d.Applied, op)
		}
	}
	if len(d.Applied) == 0 {
		d.Account = a
	}
	return d
}

// NeedsWholeRecord reports whether some answer asks for the record read whole.
func (d Decision) NeedsWholeRecord() bool {
	for _, ans := range d.Answers {
		if errors.Is(ans.Err, ErrNeedWholeRecord) {
			return true
		}
	}
	return false
}

// clone copies a so that a decision can change the copy: the slices a decision replaces
// (holds, closed holds, ledgers, history chunks) are replaced, never written through.
func (a Account) clone() Account {
	return a
}

// ledgerOf is where op's key is recorded, with its bounds.
func (a *Account) ledgerOf(kind OpKind, rules Settings) (*keyLedger, int, time.Duration) {
	if kind == OpGrant {
		return &a.grants, GrantKeysMaxEntries, rules.GrantKeyRetention
	}
	return &a.requests, RequestKeysMaxEntries, RequestKeysMaxAge
}

// findKey looks op's key up in both ledgers: found with its answer (a replay, or
// ErrIdempotencyKeyReused), or ErrNeedWholeRecord when the answer may be in a part of the
// record this account does not hold.
func (a *Account) findKey(op Operation, now time.Time, rules Settings) (Result, bool, error) {
	hash := hashKey(op.IdempotencyKey)
	for _, kind := range []OpKind{OpGrant, OpConsume} {
		ledger, _, maxAge := a.ledgerOf(kind, rules)
		e, found, mightHold := ledger.find(hash, now.Add(-maxAge))
		if mightHold {
			return Result{}, false, ErrNeedWholeRecord
		}
		if found {
			res, err := replay(e, op)
			return res, true, err
		}
	}
	if op.Kind == OpGrant && a.grants.partial {
		return Result{}, false, ErrNeedWholeRecord // its record joins the whole grant ledger
	}
	return Result{}, false, nil
}

// recordKey adds op's key, with its answer, to the ledger it belongs in.
func (a *Account) recordKey(op Operation, res Result, now time.Time, rules Settings) {
	ledger, maxEntries, maxAge := a.ledgerOf(op.Kind, rules)
	id := named(op) // the hold or lot it named
	switch op.Kind {
	case OpReserve:
		id = res.ReservationID // the hold it made
	case OpGrant:
		id = res.LotID // the lot it made
	}
	*ledger = ledger.with(appliedKey{Key: hashKey(op.IdempotencyKey), Op: ledgerOp(op), Amount: requested(op), Result: res.Credits, At: now.Unix(), ID: id,
		Terms: termsDigest(op)}, maxEntries, now.Add(-maxAge))
}

// changeEntries are the history entries of lots' changes: expire or void naming the lot;
// refund, dispute or reinstate naming the purchase. A lost dispute moves nothing: no entry.
func changeEntries(changes []LotChange) []historyEntry {
	out := make([]historyEntry, 0, len(changes))
	for _, c := range changes {
		switch c.Why {
		case RemovedExpired, RemovedVoided:
			kind := OpExpire
			if c.Why == RemovedVoided {
				kind = OpVoid
			}
			out = append(out, historyEntry{kind: kind, credits: c.Credits, reference: c.Lot})
		case Refunded:
			out = append(out, historyEntry{kind: OpRefund, credits: c.Credits, reference: c.Reference, unrecoverable: c.Unrecoverable})
		case Disputed:
			out = append(out, historyEntry{kind: OpDispute, credits: c.Credits, reference: c.Reference})
		case Reinstated:
			out = append(out, historyEntry{kind: KindReinstate, credits: c.Credits, reference: c.Reference})
		}
	}
	return out
}
