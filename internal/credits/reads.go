package credits

import (
	"context"
	"fmt"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// reader finds a user's record, with three verbs:
//   - cached: in the informer cache (the index of users), with this replica's own writes
//     laid over it until the cache shows them (overlay.go);
//   - current: cached, or, until the index has synced, at the apiserver (warmup.go);
//   - fetch: at the apiserver, by name.
//
// Records that two objects claim are untrusted, and reported. Objects returned are shared
// with the cache and must not be modified.
type reader struct {
	objects   Objects
	written   *overlay
	synced    func() bool
	api       client.Reader
	namespace string
	warm      *warmup
	report    *reporter
}

// cached returns user's one record from the cache, or this replica's newer write of it;
// nil when there is none.
func (r *reader) cached(user account.UserID) (*creditsv1alpha1.UserCredits, error) {
	obj, n := r.objects.One(string(user))
	if n > 1 {
		err := fmt.Errorf("%w: %d objects claim user %q", account.ErrUntrusted, n, user)
		for _, o := range r.objects.Lookup(string(user)) {
			r.report.untrusted(o, user, err)
		}
		return nil, err
	}
	return r.written.newest(string(user), obj), nil
}

// current returns user's record as cached, or, until the index has synced, as the
// apiserver has it (fromAPI: read whole from etcd). Until then, a record the replica
// remembers is judged again against the objects under other names (warmup.recheck). A
// decision (a write) reads a record not in memory from etcd; a view (a read) from the
// apiserver's watch cache, as fresh as this replica's cache (warmup.go).
func (r *reader) current(ctx context.Context, user account.UserID, decision bool) (obj *creditsv1alpha1.UserCredits, fromAPI bool, err error) {
	if obj, err = r.cached(user); err != nil || r.synced() {
		return obj, false, err
	}
	if obj != nil {
		obj, err = r.warm.recheck(user, obj)
		return obj, false, err
	}
	return r.warm.read(ctx, user, decision)
}

// fetch gets the object at key from the apiserver; nil when it does not exist.
func (r *reader) fetch(ctx context.Context, key client.ObjectKey) (*creditsv1alpha1.UserCredits, error) {
	return fetch(ctx, r.api, key)
}

// key is where user's record is: obj's, or, without one, where the API creates it.
func (r *reader) key(user account.UserID, obj *creditsv1alpha1.UserCredits) client.ObjectKey {
	if obj != nil {
		return client.ObjectKeyFromObject(obj)
	}
	return client.ObjectKey{Namespace: r.namespace, Name: account.ObjectNameForUser(string(user))}
}

// decode is the account obj holds for user, or why it cannot be trusted (reported).
func (r *reader) decode(obj *creditsv1alpha1.UserCredits, user account.UserID) (account.Account, error) {
	if obj.Spec.UserID != string(user) {
		err := fmt.Errorf("%w: object %s claims user %q, not %q", account.ErrUntrusted, obj.Name, obj.Spec.UserID, user)
		r.report.untrusted(obj, user, err)
		return account.Account{}, err
	}
	a, err := account.Decode(obj)
	if err != nil {
		r.report.untrusted(obj, user, err)
		return account.Account{}, err
	}
	r.report.damaged(obj, a.Damage())
	return a, nil
}

// balance is what user can spend now as obj holds it, or why it cannot be trusted.
func (r *reader) balance(obj *creditsv1alpha1.UserCredits, user account.UserID) (int64, error) {
	n, err := account.Balance(obj, time.Now())
	if err == nil && obj.Spec.UserID != string(user) {
		err = fmt.Errorf("%w: object %s claims user %q, not %q", account.ErrUntrusted, obj.Name, obj.Spec.UserID, user)
	}
	if err != nil {
		r.report.untrusted(obj, user, err)
	}
	return n, err
}

// summary is obj's account for user without its ledgers and history (all a read needs), or
// why it cannot be trusted.
func (r *reader) summary(obj *creditsv1alpha1.UserCredits, user account.UserID) (account.Account, error) {
	a, err := account.Summary(obj)
	if err == nil && obj.Spec.UserID != string(user) {
		err = fmt.Errorf("%w: object %s claims user %q, not %q", account.ErrUntrusted, obj.Name, obj.Spec.UserID, user)
	}
	if err != nil {
		r.report.untrusted(obj, user, err)
	}
	return a, err
}
