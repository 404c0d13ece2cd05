package credits

import (
	"context"
	"errors"
	"sync"
	"time"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/expiring"
)

// refusalConfirmInterval is how often, at most, a refusal for insufficient credits that the
// cache decided is confirmed against the apiserver for one user.
const refusalConfirmInterval = time.Second

// maxRememberedRefusals bounds the refusal memory; a user dropped from it only costs one
// more confirmation.
const maxRememberedRefusals = 100_000

// refusalGate decides how a refusal the cache decided is confirmed: by a read from the
// apiserver, or by waiting briefly for the cache to show a change.
type refusalGate struct {
	objects Objects
	written *overlay
	// confirmed remembers, per user, that a refusal was confirmed within refusalConfirmInterval.
	confirmed *expiring.Cache[account.UserID, struct{}]
	changes   *userChanges
}

func newRefusalGate(objects Objects, written *overlay) *refusalGate {
	g := &refusalGate{objects: objects, written: written, confirmed: expiring.NewCache[account.UserID, struct{}](maxRememberedRefusals), changes: newUserChanges()}
	objects.Observe(g.changes.observe)
	return g
}

// mustConfirm says whether a refusal for insufficient credits that the cache decided must
// be confirmed by a read from the apiserver: always while this replica has a write for the
// user that its cache has not shown, else at most once per refusalConfirmInterval. A
// refusal changes nothing, and the precondition still guards every write; the
// confirmation catches a grant made through another replica or kubectl that the cache has
// not shown yet, without letting a user who keeps consuming at zero drive one apiserver
// read per request. (A hold the cache does not show is always confirmed: writer.)
func (g *refusalGate) mustConfirm(user account.UserID) bool {
	if g.written.pending(string(user)) {
		return true
	}
	now := time.Now()
	if _, recent := g.confirmed.Get(user, now); recent {
		return false
	}
	g.confirmed.Put(user, struct{}{}, now.Add(refusalConfirmInterval), now)
	return true
}

// refusalSettle is how long a refusal the cache decided, when it is not confirmed by a
// read, waits for the informer to show a change of the user's object before it is
// answered. A grant or set made through kubectl, a GitOps tool or another replica an
// instant before the request reaches this replica's cache within the watch's lag
// (milliseconds), and the refusal is decided again on it.
const refusalSettle = 50 * time.Millisecond

// maxRefusalSettles bounds how often one batch of refusals is decided again (a user whose
// object keeps changing without credits to spend costs at most this many decisions).
const maxRefusalSettles = 3

// errCacheMoved is how decideAndWrite says its refusals were decided on a state the cache
// has since moved past: decide again.
var errCacheMoved = errors.New("the cache moved past the state a refusal was decided on")

// cacheMovedPast reports whether the cache shows, now or before until, another state of
// userID's object than decidedOn (nil: no object).
func (g *refusalGate) cacheMovedPast(ctx context.Context, user account.UserID, decidedOn *creditsv1alpha1.UserCredits, until time.Time) bool {
	userID := string(user)
	changed := g.changes.next(userID)
	defer g.changes.forget(userID, changed)
	if now, _ := g.objects.One(userID); !sameVersion(g.written.newest(userID, now), decidedOn) {
		return true
	}
	wait := time.Until(until)
	if wait <= 0 {
		return false
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-changed:
		return true
	case <-timer.C:
	case <-ctx.Done():
	}
	return false
}

func sameVersion(a, b *creditsv1alpha1.UserCredits) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.UID == b.UID && a.ResourceVersion == b.ResourceVersion
}

// userChanges wakes whoever waits for a change of a user's object (an Observer). A replica
// has at most one waiter per user: one writer decides each user's batches.
type userChanges struct {
	mu      sync.Mutex
	waiting map[string]chan struct{}
}

func newUserChanges() *userChanges { return &userChanges{waiting: map[string]chan struct{}{}} }

// next returns a channel closed at the next change of userID's object.
func (c *userChanges) next(userID string) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.waiting[userID]
	if ch == nil {
		ch = make(chan struct{})
		c.waiting[userID] = ch
	}
	return ch
}

// forget drops a wait that is over, so that users who are waited on once hold no memory.
func (c *userChanges) forget(userID string, ch <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waiting[userID] == ch {
		delete(c.waiting, userID)
	}
}

func (c *userChanges) observe(obj *creditsv1alpha1.UserCredits, _, _ bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch := c.waiting[obj.Spec.UserID]; ch != nil {
		close(ch)
		delete(c.waiting, obj.Spec.UserID)
	}
}
