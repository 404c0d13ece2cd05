package credits

import (
	"context"
	"sync"
)

// userLocks serializes the operations on one user within this replica, so that concurrent
// requests queue here instead of colliding at the apiserver; across replicas the
// resourceVersion check does the same job. Waiting honors the request's context.
type userLocks struct {
	mu    sync.Mutex
	locks map[string]*userLock
}

type userLock struct {
	sem  chan struct{}
	refs int
}

func newUserLocks() *userLocks { return &userLocks{locks: map[string]*userLock{}} }

// lock takes userID's lock, or fails when ctx ends first. The returned func releases it.
func (u *userLocks) lock(ctx context.Context, userID string) (func(), error) {
	u.mu.Lock()
	l := u.locks[userID]
	if l == nil {
		l = &userLock{sem: make(chan struct{}, 1)}
		u.locks[userID] = l
	}
	l.refs++
	u.mu.Unlock()

	release := func() {
		u.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(u.locks, userID)
		}
		u.mu.Unlock()
	}
	select {
	case l.sem <- struct{}{}:
		return func() { <-l.sem; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
