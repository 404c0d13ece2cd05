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
//     of Foreign that claim the user: none, one, or two and more (untrusted);
//   - without Foreign, a list by the spec.userID field selector finds the user's objects
//     under any name, at the price of a scan of the namespace (about 200 ms of apiserver
//     time at 100,000 objects): those lists share one budget per replica
//     (warmupListRate), and a lookup over budget waits for the index instead.
//
// What is found is remembered: a record with this replica's own writes (overlay.go) until
// the index shows it; a user with no record, or with two, for warmupRemember. Each user
// costs the apiserver at most one read a second while the replica warms up.
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
}

func newWarmup(api client.Reader, namespace string, written *overlay, synced func() bool,
	cached func(account.UserID) (*creditsv1alpha1.UserCredits, error), report *reporter) *warmup {
	return &warmup{api: api, namespace: namespace, written: written, synced: synced, cached: cached,
		lists: rate.NewLimiter(warmupListRate, warmupListBurst), answers: expiring.NewCache[account.UserID, error](maxWarmAnswers), report: report}
}

// read finds user's record at the apiserver (above); fromAPI is false when the answer came
// from memory or, after waiting, from the synced index.
func (w *warmup) read(ctx context.Context, user account.UserID) (*creditsv1alpha1.UserCredits, bool, error) {
	if err, known := w.answers.Get(user, time.Now()); known {
		return nil, false, err
	}
	if w.foreign != nil && w.foreignSynced() {
		return w.readByName(ctx, user)
	}
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
	return w.found(user, obj, err)
}

// readByName reads user's object under the API's name and adds those under other names
// that claim the user (foreign).
func (w *warmup) readByName(ctx context.Context, user account.UserID) (*creditsv1alpha1.UserCredits, bool, error) {
	named, err := fetch(ctx, w.api, client.ObjectKey{Namespace: w.namespace, Name: account.ObjectNameForUser(string(user))})
	if err != nil {
		return nil, true, err
	}
	claims := w.foreign.Lookup(string(user))
	if named != nil { // an object under the API's name not yet labelled is in both
		claims = append(slices.DeleteFunc(slices.Clone(claims), func(o *creditsv1alpha1.UserCredits) bool { return o.Name == named.Name }), named)
	}
	var obj *creditsv1alpha1.UserCredits
	switch len(claims) {
	case 0:
	case 1:
		obj = claims[0]
	default:
		err = fmt.Errorf("%w: %d objects claim user %q", account.ErrUntrusted, len(claims), user)
		for _, o := range claims {
			w.report.untrusted(o, user, err)
		}
	}
	return w.found(user, obj, err)
}

// found remembers what a read from the apiserver found for user, and answers it.
func (w *warmup) found(user account.UserID, obj *creditsv1alpha1.UserCredits, err error) (*creditsv1alpha1.UserCredits, bool, error) {
	switch {
	case obj != nil:
		w.written.remember(obj) // the next read of this user needs no apiserver call
	case err == nil || errors.Is(err, account.ErrUntrusted):
		now := time.Now()
		w.answers.Put(user, err, now.Add(warmupRemember), now)
	}
	return obj, true, err
}

// listByUserID finds user's one object under any name by the spec.userID field selector;
// nil when there is none, ErrUntrusted when two or more claim the user.
func (w *warmup) listByUserID(ctx context.Context, user account.UserID) (*creditsv1alpha1.UserCredits, error) {
	var list creditsv1alpha1.UserCreditsList
	if err := w.api.List(ctx, &list, client.InNamespace(w.namespace), client.MatchingFields{creditsv1alpha1.UserIDField: string(user)}); err != nil {
		return nil, err
	}
	switch len(list.Items) {
	case 0:
		return nil, nil
	case 1:
		list.Items[0].ManagedFields = nil
		return &list.Items[0], nil
	}
	err := fmt.Errorf("%w: %d objects claim user %q", account.ErrUntrusted, len(list.Items), user)
	for i := range list.Items {
		w.report.untrusted(&list.Items[i], user, err)
	}
	return nil, err
}
