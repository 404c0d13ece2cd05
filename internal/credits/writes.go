package credits

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/metrics"
)

// writer decides batches of one user's operations on the user's account and writes each
// batch in one apiserver write whose preconditions (account.Tests) test what the decision
// read: a decision made on a stale state is refused by the apiserver and made again on a
// fresh read, so nothing decided on stale data is ever stored.
type writer struct {
	reads    *reader
	refusals *refusalGate
	client   client.Client
	rules    account.Settings
	report   *reporter
	// history keeps what the transactions endpoint last read (history.go).
	history        *historyReads
	resolveTimeout time.Duration
	writeTimeout   time.Duration
	log            logr.Logger
}

// FieldManager names the API's writes in metadata.managedFields, apart from GitOps tools and kubectl.
const FieldManager = "usercredits-api"

// conflictBackoff spreads retries of a write that lost an optimistic-concurrency race.
var conflictBackoff = wait.Backoff{Steps: 10, Duration: 5 * time.Millisecond, Factor: 2, Jitter: 0.5, Cap: time.Second}

// writeQueued decides and writes one batch of user's queued operations, resolves a write
// whose answer was lost, and answers each operation (the batcher's write).
func (w *writer) writeQueued(user account.UserID, batch []*queuedOp) {
	ops := make([]account.Operation, len(batch))
	for i, q := range batch {
		ops[i] = q.op
	}
	deadline, arrived := bounds(batch, w.writeTimeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	answers, err := w.writeBatch(ctx, user, ops, arrived.Add(refusalSettle))
	cancel()
	if err != nil {
		answers = w.resolve(user, ops, err)
	}
	for i, q := range batch {
		q.done <- answers[i]
	}
}

// writeBatch decides ops on user's account and writes them in one patch (or create). The
// decision starts from the cache unless resolving; every retry reads the record from the
// apiserver. A batch that writes is confirmed by its preconditions, and so are the
// refusals decided on the same state; a batch of refusals alone is confirmed by a read
// from the apiserver (refusalGate), or, over that read's budget, decided again when the
// cache shows a change until settleUntil (refusalSettle after the last of ops arrived).
// A zero settleUntil means resolving: every decision is made on a fresh read.
func (w *writer) writeBatch(ctx context.Context, user account.UserID, ops []account.Operation, settleUntil time.Time) ([]account.Answer, error) {
	for settles := 1; ; settles++ {
		if settles > maxRefusalSettles {
			settleUntil = time.Time{} // the cache keeps moving: decide on a fresh read instead
		}
		answers, err := w.decideAndWrite(ctx, user, ops, settleUntil)
		if !errors.Is(err, errCacheMoved) {
			return answers, err
		}
	}
}

// decideAndWrite is one decision of writeBatch's; errCacheMoved asks for another.
func (w *writer) decideAndWrite(ctx context.Context, user account.UserID, ops []account.Operation, settleUntil time.Time) ([]account.Answer, error) {
	resolving := settleUntil.IsZero()
	cached, fromAPI, err := w.reads.current(ctx, user, true)
	if err != nil {
		if fromAPI {
			return nil, err // the apiserver could not be read
		}
		return errorAnswers(len(ops), err), nil
	}
	key := w.reads.key(user, cached)
	current, fresh := cached, resolving
	backoff := conflictBackoff
	var invalid error // a write answered 422, and what it tested
	var invalidTested string
	for {
		if fresh {
			if current, err = w.reads.fetch(ctx, key); err != nil {
				return nil, err
			}
			if current == nil {
				w.reads.written.forget(string(user)) // the apiserver has no object: nor may the overlay
			}
			fromAPI = true
			if invalid != nil && current != nil && account.TestedState(current) == invalidTested {
				return nil, classifyWriteError(invalid) // nothing it tested moved: the write itself was refused
			}
			invalid = nil
		}
		fresh = true // any second pass reads from the apiserver

		var acct account.Account
		if current != nil {
			if acct, err = w.reads.decode(current, user); err != nil {
				return errorAnswers(len(ops), err), nil
			}
		}
		d := acct.ApplyAll(user, ops, time.Now(), w.rules)
		if !fromAPI && (d.NeedsWholeRecord() || notInCache(d)) {
			continue // decide on the record read whole; a hold, lot or purchase another replica just made may be there
		}
		if len(d.Applied) == 0 {
			if d.Refused && !fromAPI {
				if w.refusals.mustConfirm(user) {
					continue // confirm the refusals against the apiserver
				}
				if w.refusals.cacheMovedPast(ctx, user, cached, settleUntil) {
					return nil, errCacheMoved
				}
			}
			if resolving && current != nil {
				w.reads.written.remember(current) // what the answers rest on: read-your-writes for it
			}
			return d.Answers, nil
		}
		var written *creditsv1alpha1.UserCredits
		if current == nil {
			written, err = w.create(ctx, key, d.Account)
			if apierrors.IsAlreadyExists(err) {
				continue // another replica (or kubectl) created it meanwhile
			}
		} else {
			written, err = w.patch(ctx, current, d.Account)
			if mayBeStale(err) && backoff.Steps > 1 {
				if apierrors.IsInvalid(err) {
					invalid, invalidTested = err, account.TestedState(current)
				}
				metrics.ConflictRetries.Inc()
				w.log.V(1).Info("write conflict, retrying", "userID", user, "operations", len(ops))
				select {
				case <-time.After(backoff.Step()):
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				continue
			}
		}
		if err != nil {
			return nil, classifyWriteError(err)
		}
		w.done(written, d.Applied, d.Account.Changes())
		return d.Answers, nil
	}
}

// notInCache reports a capture or release refused because the hold is not known, a void
// because the lot is not, or a refund or dispute because no lot names its payment: the
// refusal is confirmed against the apiserver before it is answered, every time, as the
// hold, lot or purchase may have just been made through another replica (or a
// CreditGrant's controller) whose write this cache has not shown (a caller takes 404 as
// final; Stripe takes 200 as final).
func notInCache(d account.Decision) bool {
	for _, a := range d.Answers {
		if errors.Is(a.Err, account.ErrReservationNotFound) || errors.Is(a.Err, account.ErrLotNotFound) || errors.Is(a.Err, account.ErrPaymentNotFound) {
			return true
		}
	}
	return false
}

// resolve answers a batch whose write failed. A write whose answer was lost (deadline,
// broken connection, apiserver timeout) may or may not have been applied; its keyed
// operations find out: applied again from a fresh read, each either finds its key recorded
// (it was applied) or applies now, under the preconditions that make a late arrival of the
// first write fail, so each happens exactly once. Keyless operations, and every operation
// of a write that surely failed, answer the error.
func (w *writer) resolve(user account.UserID, ops []account.Operation, err error) []account.Answer {
	out := errorAnswers(len(ops), err)
	var lost *lostWriteError
	if !errors.As(err, &lost) {
		return out
	}
	var keyed []account.Operation
	var at []int
	for i, op := range ops {
		if op.IdempotencyKey != "" {
			keyed, at = append(keyed, op), append(at, i)
		}
	}
	if len(keyed) == 0 {
		return out
	}
	w.log.Info("write answer lost; resolving its keyed operations", "userID", user, "operations", len(keyed), "error", lost.Error())
	ctx, cancel := context.WithTimeout(context.Background(), w.resolveTimeout)
	defer cancel()
	resolved, rerr := w.writeBatch(ctx, user, keyed, time.Time{})
	if rerr != nil {
		return out
	}
	for j, i := range at {
		out[i] = resolved[j]
		out[i].Result.Replayed = false // this request's first and only answer
	}
	return out
}

// create makes the record of a account at key.
func (w *writer) create(ctx context.Context, key client.ObjectKey, a account.Account) (*creditsv1alpha1.UserCredits, error) {
	obj, err := account.NewObject(key.Name, key.Namespace, a)
	if err != nil {
		return nil, err
	}
	return obj, w.client.Create(ctx, obj, client.FieldOwner(FieldManager))
}

// patch writes a over current as a JSON patch whose first operations are its
// preconditions (account.Tests), which the apiserver checks against the stored object.
func (w *writer) patch(ctx context.Context, current *creditsv1alpha1.UserCredits, a account.Account) (*creditsv1alpha1.UserCredits, error) {
	ops, err := account.Patch(current, a)
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(append(account.Tests(current), ops...)) // cannot fail: plain values
	written := current.DeepCopy()
	return written, w.client.Patch(ctx, written, client.RawPatch(types.JSONPatchType, body), client.FieldOwner(FieldManager))
}

// done finishes a successful write: read-your-writes, the history it extends, then a log
// line for each operation it applied and an Event for those that leave one.
func (w *writer) done(written *creditsv1alpha1.UserCredits, applied []account.Operation, changes []account.LotChange) {
	written.ManagedFields = nil
	w.reads.written.remember(written)
	w.history.wrote(written)
	w.report.wrote(written, applied, changes)
}

// mayBeStale reports whether a write may have been refused because the object changed
// since the state it was decided on: a resourceVersion conflict, a 404 (it was deleted), or
// a 422 Invalid, which is how the apiserver answers a failed test of the preconditions. A
// 422 is also how it answers a write that the object's validation refuses, with nothing in
// the answer to tell the two apart, so the writer confirms a 422 on its next read
// (account.TestedState).
func mayBeStale(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsNotFound(err) || apierrors.IsInvalid(err)
}
