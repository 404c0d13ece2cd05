package credits

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/time/rate"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/expiring"
)

// Readiness does not wait for the informer's first list, which at 100,000 users takes the
// apiserver alone tens of seconds to send (make bench). Until that list is in, a user the
// index does not show yet is read from the apiserver, and a record that two objects claim
// is never served, during warm-up as after it:
//
//   - the objects whose name is not the one the API gives their user (a GitOps tool's:
//     they lack account.NameLabel) are few, and a cache of only those is filled at start by
//     one selection (Foreign; readiness waits for it, StoreOptions). A user's record is then
//     the object under the API's name (one GET, a few milliseconds at any scale) and those
//     of Foreign that claim the user: one, or two and more (untrusted). For a read (a GET
//     of the balance), the apiserver answers from its watch cache (fromWatchCache): the
//     informer's own list keeps the apiserver busy, and a read that waits for etcd besides
//     is slower still; the record is as fresh as the cache this replica serves from once
//     synced, and is remembered as a record of that cache: a later decision on it is
//     confirmed at the apiserver before it is trusted, as one on the cache is. A write's
//     first read is from etcd, as before. Finding none is
//     confirmed by a list by spec.userID (below), which finds an object under any name
//     whatever its labels: the label is only a client's word, and a GitOps manifest that
//     copied it from an object the API made hides its object from Foreign;
//   - without Foreign, a list by the spec.userID field selector finds the user's objects
//     under any name, at the price of a scan of the namespace (about 200 ms of apiserver
//     time at 100,000 objects): those lists share one budget per replica
//     (warmupListRate), and a lookup over budget waits for the index instead.
//
// What is found is remembered: a record with this replica's own writes (overlay.go) until
// the index shows it; a user with no record, or with two, for warmupRemember. Each user
// costs the apiserver at most one read a second while the replica warms up. A remembered
// record is judged again against Foreign at every read, which shows a second object made
// meanwhile within the watch's lag; and once the index has synced, remembered records it
// does not show are checked at the apiserver (settle): the informer never reports the
// deletion of an object deleted before its first list.
const (
	warmupListRate  = rate.Limit(5)
	warmupListBurst = 10
	warmupPoll      = 50 * time.Millisecond
	warmupRemember  = time.Second
	maxWarmAnswers  = 100_000
)

// warmup reads users the index does not show yet from the apiserver.
type warmup struct {
	api       client.Reader
	namespace string
	written   *overlay
	synced    func() bool
	// cached is the reader's cache lookup, asked again once the index has synced.
	cached func(account.UserID) (*creditsv1alpha1.UserCredits, error)
	// lists budgets the lists by spec.userID of this replica.
	lists *rate.Limiter
	// answers remembers, for warmupRemember, users found to have no record (a nil error)
	// or two (the error).
	answers *expiring.Cache[account.UserID, error]
	report  *reporter
	// foreign holds the objects not under the API's names, once foreignSynced (nil: none).
	foreign       Objects
	foreignSynced func() bool
	// pacer is told of the reads waiting for the apiserver (nil: none).
	pacer *ListPacer
}

func newWarmup(api client.Reader, namespace string, written *overlay, synced func() bool,
	cached func(account.UserID) (*creditsv1alpha1.UserCredits, error), report *reporter) *warmup {
	return &warmup{api: api, namespace: namespace, written: written, synced: synced, cached: cached,
		lists: rate.NewLimiter(warmupListRate, warmupListBurst), answers: expiring.NewCache[account.UserID, error](maxWarmAnswers), report: report}
}

// read finds user's record at the apiserver (above). fromAPI is true when obj was read
// whole from etcd through the apiserver (or none was found there); false when it came from
// memory, from the apiserver's watch cache, from Foreign (in the cache's form,
// CacheTransform) or, after waiting, from the synced index.
func (w *warmup) read(ctx context.Context, user account.UserID, decision bool) (*creditsv1alpha1.UserCredits, bool, error) {
	if err, known := w.answers.Get(user, time.Now()); known {
		return nil, false, err
	}
	if w.censused() {
		return w.readByName(ctx, user, decision)
	}
	return w.listBudgeted(ctx, user)
}

// censused reports whether Foreign is known: every object under a name the API did not
// give is in it (but those that carry a copied account.NameLabel).
func (w *warmup) censused() bool { return w.foreign != nil && w.foreignSynced() }

// readByName reads user's object under the API's name, from etcd for a decision, else
// from the apiserver's watch cache, and adds those under other names that claim the user
// (foreign); when neither has one, a list by spec.userID says.
func (w *warmup) readByName(ctx context.Context, user account.UserID, decision bool) (*creditsv1alpha1.UserCredits, bool, error) {
	key := client.ObjectKey{Namespace: w.namespace, Name: account.ObjectNameForUser(string(user))}
	var named *creditsv1alpha1.UserCredits
	var err error
	done := w.pacer.reading()
	if decision {
		named, err = fetch(ctx, w.api, key)
	} else {
		named, err = fetch(ctx, w.api, key, fromWatchCache)
	}
	done()
	if err != nil {
		return nil, true, err
	}
	claims := w.claims(user, named)
	switch len(claims) {
	case 0:
		return w.listBudgeted(ctx, user)
	case 1:
		return w.found(user, claims[0], decision && claims[0] == named, nil)
	}
	return w.found(user, nil, true, w.untrusted(user, claims))
}

// claims are the objects claiming user: mine, if any, and those of Foreign under other
// names. An object in both (under the API's name not yet labelled, or a GitOps-named one
// read before) is counted once, in its newer state.
func (w *warmup) claims(user account.UserID, mine *creditsv1alpha1.UserCredits) []*creditsv1alpha1.UserCredits {
	claims := w.foreign.Lookup(string(user))
	if mine == nil {
		return claims
	}
	claims = slices.Clone(claims)
	if i := slices.IndexFunc(claims, func(o *creditsv1alpha1.UserCredits) bool { return o.Name == mine.Name }); i < 0 {
		claims = append(claims, mine)
	} else if !newer(claims[i], mine) {
		claims[i] = mine
	}
	return claims
}

// untrusted is the error for a user two or more objects claim, reported on each of them.
func (w *warmup) untrusted(user account.UserID, claims []*creditsv1alpha1.UserCredits) error {
	err := fmt.Errorf("%w: %d objects claim user %q", account.ErrUntrusted, len(claims), user)
	for _, o := range claims {
		w.report.untrusted(o, user, err)
	}
	return err
}

// recheck judges remembered, a record of user this replica remembers while it warms up,
// against Foreign again: an object made under another name since remembered was read
// claims the user too, and the record is no longer served or changed; a GitOps-named
// record Foreign shows in a newer state (changed since) is answered in that state.
func (w *warmup) recheck(user account.UserID, remembered *creditsv1alpha1.UserCredits) (*creditsv1alpha1.UserCredits, error) {
	if !w.censused() {
		return remembered, nil
	}
	claims := w.claims(user, remembered)
	if len(claims) > 1 {
		return nil, w.untrusted(user, claims)
	}
	return claims[0], nil
}

// found remembers what a read from the apiserver found for user, and answers it; whole
// says obj was read whole from the apiserver.
func (w *warmup) found(user account.UserID, obj *creditsv1alpha1.UserCredits, whole bool, err error) (*creditsv1alpha1.UserCredits, bool, error) {
	switch {
	case obj != nil:
		w.written.rememberRead(obj) // the next read of this user needs no apiserver call
	case err == nil || errors.Is(err, account.ErrUntrusted):
		now := time.Now()
		w.answers.Put(user, err, now.Add(warmupRemember), now)
	}
	return obj, whole, err
}

// listBudgeted finds user's objects by listByUserID within the replica's budget of lists;
// over it, it waits for the budget or the index, whichever comes first.
func (w *warmup) listBudgeted(ctx context.Context, user account.UserID) (*creditsv1alpha1.UserCredits, bool, error) {
	for !w.lists.Allow() {
		if w.synced() {
			obj, err := w.cached(user)
			return obj, false, err
		}
		select {
		case <-ctx.Done():
			return nil, true, fmt.Errorf("waiting for the informer's first list: %w", ctx.Err())
		case <-time.After(warmupPoll):
		}
	}
	obj, err := w.listByUserID(ctx, user)
	return w.found(user, obj, true, err)
}

// listByUserID finds user's one object under any name by the spec.userID field selector;
// nil when there is none, ErrUntrusted when two or more claim the user.
func (w *warmup) listByUserID(ctx context.Context, user account.UserID) (*creditsv1alpha1.UserCredits, error) {
	var list creditsv1alpha1.UserCreditsList
	done := w.pacer.reading()
	err := w.api.List(ctx, &list, client.InNamespace(w.namespace), client.MatchingFields{creditsv1alpha1.UserIDField: string(user)})
	done()
	if err != nil {
		return nil, err
	}
	switch len(list.Items) {
	case 0:
		return nil, nil
	case 1:
		list.Items[0].ManagedFields = nil
		return &list.Items[0], nil
	}
	claims := make([]*creditsv1alpha1.UserCredits, len(list.Items))
	for i := range list.Items {
		claims[i] = &list.Items[i]
	}
	return nil, w.untrusted(user, claims)
}

// settleRetry is how long settle waits before it asks the apiserver again about records it
// could not read.
const settleRetry = time.Second

// settle ends the warm-up once the index has synced. A record read or written while
// warming up stays in the overlay until the informer shows it; one whose object was
// deleted before the informer's first list is neither in that list nor deleted by a later
// event, and would be served for as long as the replica runs. Each record the index does
// not show under its name is read again: deleted, it is dropped; there, it was made after
// the list, and the watch is about to show it. Reads that fail are tried again until ctx
// ends.
func (r *reader) settle(ctx context.Context) {
	todo := r.written.endWarmUp()
	for {
		var retry []*creditsv1alpha1.UserCredits
		for _, mine := range todo {
			if slices.ContainsFunc(r.objects.Lookup(mine.Spec.UserID), func(o *creditsv1alpha1.UserCredits) bool { return o.Name == mine.Name }) {
				continue // the overlay lets it go when the informer shows it or its deletion
			}
			obj, err := r.fetch(ctx, client.ObjectKeyFromObject(mine))
			switch {
			case err != nil:
				retry = append(retry, mine)
			case obj == nil:
				r.written.forgetIf(mine.Spec.UserID, mine)
			}
		}
		if len(retry) == 0 {
			return
		}
		r.report.log.Info("warm-up: records the synced cache does not show could not be checked; retrying", "records", len(retry))
		select {
		case <-ctx.Done():
			return
		case <-time.After(settleRetry):
		}
		todo = retry
	}
}
