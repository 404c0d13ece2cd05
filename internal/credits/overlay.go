package credits

import (
	"strconv"
	"sync"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// Read-your-writes without waiting for the informer: every object this replica writes is
// kept in an overlay until the informer shows it (or something newer, or its deletion).
// Reads and the next write's decision take the overlay's object when it is newer than the
// cache's, so a client's next request on this replica sees its write, and a hot user's
// next batch is decided on the state the last one left instead of conflicting with it.
// Entries live for the informer's lag (milliseconds); after an apiserver outage, until
// the informer has re-listed; those of a warming replica (its writes, and the records it
// read at the apiserver, warmup.go) until the informer's first list is in, when the ones it
// does not show are checked at the apiserver (warmup.settle).
type overlay struct {
	mu    sync.Mutex
	users map[string]*creditsv1alpha1.UserCredits
	// warmUpEnded: reads are no longer kept (rememberRead).
	warmUpEnded bool
}

func newOverlay() *overlay { return &overlay{users: map[string]*creditsv1alpha1.UserCredits{}} }

// remember keeps written, the apiserver's answer to this replica's write.
func (o *overlay) remember(written *creditsv1alpha1.UserCredits) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.keep(written)
}

// keep keeps written unless the overlay holds a newer state of its user; o.mu is held.
func (o *overlay) keep(written *creditsv1alpha1.UserCredits) {
	if prev := o.users[written.Spec.UserID]; prev == nil || newer(written, prev) {
		o.users[written.Spec.UserID] = written
	}
}

// newest returns the overlay's object for cached's user (by cached's name, or userID when
// cached is nil) when it is newer than cached; else cached.
func (o *overlay) newest(userID string, cached *creditsv1alpha1.UserCredits) *creditsv1alpha1.UserCredits {
	o.mu.Lock()
	mine := o.users[userID]
	o.mu.Unlock()
	if mine == nil || (cached != nil && (mine.Name != cached.Name || !newer(mine, cached))) {
		return cached
	}
	return mine
}

// forget drops userID's write, whose object the apiserver no longer has (its deletion may
// have gone by before the informer listed the object, and so never be observed).
func (o *overlay) forget(userID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.users, userID)
}

// forgetIf drops userID's entry if it is still mine (a later write of the user's stays).
func (o *overlay) forgetIf(userID string, mine *creditsv1alpha1.UserCredits) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.users[userID] == mine {
		delete(o.users, userID)
	}
}

// rememberRead keeps obj, a record read at the apiserver while the replica warms up, as a
// write is kept; once the warm-up has ended (endWarmUp) the index holds every record, and a
// read that was under way then is not kept: endWarmUp would not have checked it.
func (o *overlay) rememberRead(obj *creditsv1alpha1.UserCredits) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.warmUpEnded {
		o.keep(obj)
	}
}

// endWarmUp marks the end of the warm-up (the index has synced) and returns every object
// the overlay holds, for warmup's settle to check.
func (o *overlay) endWarmUp() []*creditsv1alpha1.UserCredits {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.warmUpEnded = true
	out := make([]*creditsv1alpha1.UserCredits, 0, len(o.users))
	for _, obj := range o.users {
		out = append(out, obj)
	}
	return out
}

// pending reports whether the informer has not yet shown a write of userID's.
func (o *overlay) pending(userID string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.users[userID] != nil
}

// observe forgets a write once the informer shows it, something newer, or the deletion of
// its object (an Observer).
func (o *overlay) observe(obj *creditsv1alpha1.UserCredits, deleted, _ bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if mine := o.users[obj.Spec.UserID]; mine != nil && mine.Name == obj.Name && (deleted || !newer(mine, obj)) {
		delete(o.users, obj.Spec.UserID)
	}
}

// newer reports whether a's resourceVersion is after b's.
func newer(a, b *creditsv1alpha1.UserCredits) bool {
	return !resourceVersionAtLeast(b.ResourceVersion, a.ResourceVersion)
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
