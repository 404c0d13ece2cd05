package credits

import (
	"context"
	"slices"
	"strconv"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	if cached, _ := s.opts.Objects.One(userID); cached != nil && cached.Name == pw.key.Name && resourceVersionAtLeast(cached.ResourceVersion, pw.resourceVersion) {
		s.pending.CompareAndDelete(userID, v)
		return nil, false, nil
	}
	obj := &creditsv1alpha1.UserCredits{}
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
// write, and reports whether it did. The write is durable either way. The informer's event
// handler wakes the wait; nothing polls.
func (s *Store) awaitCache(ctx context.Context, written *creditsv1alpha1.UserCredits) bool {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ReadYourWritesTimeout)
	defer cancel()
	shown := s.shown.wait(written.Name, written.ResourceVersion)
	defer s.shown.forget(written.Name, shown)
	if cached, _ := s.opts.Objects.One(written.Spec.UserID); cached != nil && cached.Name == written.Name &&
		resourceVersionAtLeast(cached.ResourceVersion, written.ResourceVersion) {
		return true // shown before the waiter was registered
	}
	select {
	case <-shown.done:
		return true
	case <-ctx.Done():
		s.opts.Log.Info("cache did not show a write in time; reading this user from the apiserver until it does",
			"object", written.Name, "resourceVersion", written.ResourceVersion, "error", ctx.Err().Error())
		return false
	}
}

// shownWaiters are writes waiting for the informer to show their object at a
// resourceVersion, by object name.
type shownWaiters struct {
	mu     sync.Mutex
	byName map[string][]*shownWaiter
}

type shownWaiter struct {
	resourceVersion string
	done            chan struct{}
}

func newShownWaiters() *shownWaiters { return &shownWaiters{byName: map[string][]*shownWaiter{}} }

// wait registers a waiter for name at resourceVersion; its done closes once it is shown.
func (w *shownWaiters) wait(name, resourceVersion string) *shownWaiter {
	sw := &shownWaiter{resourceVersion: resourceVersion, done: make(chan struct{})}
	w.mu.Lock()
	w.byName[name] = append(w.byName[name], sw)
	w.mu.Unlock()
	return sw
}

// forget removes a waiter, shown or not.
func (w *shownWaiters) forget(name string, sw *shownWaiter) {
	w.mu.Lock()
	defer w.mu.Unlock()
	list := slices.DeleteFunc(w.byName[name], func(x *shownWaiter) bool { return x == sw })
	if len(list) == 0 {
		delete(w.byName, name)
	} else {
		w.byName[name] = list
	}
}

// observe wakes the waiters the informer's new state of obj satisfies (an Observer).
func (w *shownWaiters) observe(obj *creditsv1alpha1.UserCredits, deleted, _ bool) {
	if deleted {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	list := w.byName[obj.Name]
	if len(list) == 0 {
		return
	}
	kept := list[:0]
	for _, sw := range list {
		if resourceVersionAtLeast(obj.ResourceVersion, sw.resourceVersion) {
			close(sw.done)
		} else {
			kept = append(kept, sw)
		}
	}
	if len(kept) == 0 {
		delete(w.byName, obj.Name)
	} else {
		w.byName[obj.Name] = kept
	}
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
