package credits

import (
	"sync"
	"sync/atomic"
	"time"

	toolscache "k8s.io/client-go/tools/cache"
)

// ListPacer lets the informer's first list give way to the requests of a warming replica
// that wait for the apiserver (warmup.go). That list is the apiserver's and the replica's
// busiest work at start: the apiserver encodes every object, the replica decodes it, and on
// a small machine the two take every core, so a user's one GET waits behind them (tens of
// milliseconds at 20,000 users in make bench). While such a read is in flight, the
// informer takes its next object only after a short pause; its stream backs up, and the
// apiserver, held by the stream's flow control, stops encoding until the reads are
// answered. The pauses are bounded: they never add up to more than half the list's time so
// far, so the list of every object takes at most twice as long, and a replica with a
// steady flow of new users still syncs. Once no read waits, the list runs at full speed.
type ListPacer struct {
	waiting atomic.Int64

	mu     sync.Mutex
	start  time.Time     // the first object paced
	paused time.Duration // the pauses so far
}

// pacerPoll is how long the list pauses before it looks again whether reads still wait.
const pacerPoll = 250 * time.Microsecond

// NewListPacer returns a pacer no read waits on.
func NewListPacer() *ListPacer { return &ListPacer{} }

// Transform is t, taken once no read of the warm-up waits for the apiserver (or the
// pauses have reached their bound). It is the informer's transform: it runs on the
// informer's goroutine, once per object.
func (p *ListPacer) Transform(t toolscache.TransformFunc) toolscache.TransformFunc {
	return func(in any) (any, error) {
		p.pause()
		return t(in)
	}
}

// pause waits while reads wait for the apiserver and the pauses are within their bound.
func (p *ListPacer) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.start.IsZero() {
		p.start = now
	}
	for p.waiting.Load() > 0 && p.paused < now.Sub(p.start)/2 {
		time.Sleep(pacerPoll)
		next := time.Now()
		p.paused += next.Sub(now)
		now = next
	}
}

// reading marks a read waiting for the apiserver until the returned func is called. A nil
// pacer paces nothing.
func (p *ListPacer) reading() (done func()) {
	if p == nil {
		return func() {}
	}
	p.waiting.Add(1)
	return func() { p.waiting.Add(-1) }
}
