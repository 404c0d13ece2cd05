package httpapi

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// lazyDeadline is context.WithDeadline whose timer is armed only when someone waits on
// Done: a request answered from memory (a cached token, a balance from the index) never
// arms one, which was 4 % of the API's CPU under GET load (make bench profile). Anything
// that blocks (an apiserver call, a JWKS fetch) waits on Done and so gets the deadline.
type lazyDeadline struct {
	parent   context.Context
	deadline time.Time

	once   sync.Once
	armed  atomic.Pointer[armedDeadline]
	cancel context.CancelFunc
}

type armedDeadline struct{ context.Context }

func withLazyDeadline(parent context.Context, timeout time.Duration) (*lazyDeadline, context.CancelFunc) {
	d := &lazyDeadline{parent: parent, deadline: time.Now().Add(timeout)}
	return d, func() {
		d.once.Do(func() {}) // never arm after cancel
		if d.cancel != nil {
			d.cancel()
		}
	}
}

func (d *lazyDeadline) arm() context.Context {
	d.once.Do(func() {
		var armed context.Context
		armed, d.cancel = context.WithDeadline(d.parent, d.deadline)
		d.armed.Store(&armedDeadline{armed})
	})
	if a := d.armed.Load(); a != nil {
		return a.Context
	}
	return nil
}

// Deadline implements context.Context.
func (d *lazyDeadline) Deadline() (time.Time, bool) {
	if p, ok := d.parent.Deadline(); ok && p.Before(d.deadline) {
		return p, true
	}
	return d.deadline, true
}

// Done implements context.Context; it arms the deadline.
func (d *lazyDeadline) Done() <-chan struct{} {
	if armed := d.arm(); armed != nil {
		return armed.Done()
	}
	return closedAfterCancel
}

// Err implements context.Context.
func (d *lazyDeadline) Err() error {
	if a := d.armed.Load(); a != nil {
		return a.Err()
	}
	if err := d.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(d.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// Value implements context.Context.
func (d *lazyDeadline) Value(key any) any { return d.parent.Value(key) }

// closedAfterCancel is what Done returns once the request is over without having armed.
var closedAfterCancel = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()
