package credits

import (
	"context"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// observe keeps read-your-writes for an answer based on obj, a state read from or written
// to the apiserver: it waits for the cache to show obj, and when the cache lags, reads the
// user from the apiserver until it does.
func (s *Store) observe(ctx context.Context, obj *creditsv1alpha1.UserCredits) {
	if s.awaitCache(ctx, obj) {
		// The cache shows this state, so any earlier pending one is shown too: without
		// this, entries of users who are written but never read again would pile up.
		s.pending.Delete(obj.Spec.UserID)
	} else {
		s.pending.Store(obj.Spec.UserID, pendingWrite{key: client.ObjectKeyFromObject(obj), resourceVersion: obj.ResourceVersion})
	}
}

// pendingWrite is a write this replica acknowledged before its cache showed it.
type pendingWrite struct {
	key             client.ObjectKey
	resourceVersion string
}

// readPending keeps read-your-writes when the cache lags (after an apiserver outage the
// informer re-lists with backoff): a user with a write the cache has not shown yet is read
// from the apiserver until it has. ok is false when the cache can answer.
func (s *Store) readPending(ctx context.Context, userID string) (*creditsv1alpha1.UserCredits, bool, error) {
	v, ok := s.pending.Load(userID)
	if !ok {
		return nil, false, nil
	}
	pw := v.(pendingWrite)
	obj := &creditsv1alpha1.UserCredits{}
	if err := s.opts.Cache.Get(ctx, pw.key, obj); err == nil && resourceVersionAtLeast(obj.ResourceVersion, pw.resourceVersion) {
		s.pending.CompareAndDelete(userID, v)
		return nil, false, nil
	}
	if err := s.opts.APIReader.Get(ctx, pw.key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			// Deleted since: nothing of that write is left to show; the cache decides.
			s.pending.CompareAndDelete(userID, v)
			return nil, false, nil
		}
		return nil, true, err
	}
	if err := s.checkTrusted(obj, userID); err != nil {
		return nil, true, err
	}
	return obj, true, nil
}

// awaitCache waits, within ReadYourWritesTimeout and ctx, until the cache holds obj at its
// written resourceVersion or later, so that a client's next read on this replica sees its
// write, and reports whether it did. The write is durable either way.
func (s *Store) awaitCache(ctx context.Context, written *creditsv1alpha1.UserCredits) bool {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ReadYourWritesTimeout)
	defer cancel()
	key := client.ObjectKeyFromObject(written)
	cached := &creditsv1alpha1.UserCredits{}
	err := wait.PollUntilContextCancel(ctx, 500*time.Microsecond, true, func(ctx context.Context) (bool, error) {
		if err := s.opts.Cache.Get(ctx, key, cached); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return resourceVersionAtLeast(cached.ResourceVersion, written.ResourceVersion), nil
	})
	if err != nil {
		s.opts.Log.Info("cache did not show a write in time; reading this user from the apiserver until it does",
			"object", key.Name, "resourceVersion", written.ResourceVersion, "error", err.Error())
		return false
	}
	return true
}

// resourceVersionAtLeast compares resourceVersions as the etcd revisions they are; an
// unparsable one only matches itself.
func resourceVersionAtLeast(have, want string) bool {
	h, errH := strconv.ParseUint(have, 10, 64)
	w, errW := strconv.ParseUint(want, 10, 64)
	if errH != nil || errW != nil {
		return have == want
	}
	return h >= w
}
