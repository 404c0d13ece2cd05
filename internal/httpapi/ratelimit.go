package httpapi

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxRateLimitedCallers bounds the token buckets kept: one per caller seen recently.
const maxRateLimitedCallers = 100_000

// rateLimiter keeps one token bucket per caller (golang.org/x/time/rate), so one caller's
// limit never slows another. Its memory is bounded whatever the number of callers: when
// full, it first drops buckets that have refilled (a fresh bucket is the same), then, only
// under a flood of distinct busy callers, arbitrary ones.
type rateLimiter struct {
	limit   rate.Limit
	burst   int
	max     int
	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// newRateLimiter allows perSecond requests per caller with a burst of twice that; nil (no
// limit) when perSecond is 0 or less.
func newRateLimiter(perSecond float64, max int) *rateLimiter {
	if perSecond <= 0 {
		return nil
	}
	return &rateLimiter{limit: rate.Limit(perSecond), burst: max1(int(2 * perSecond)), max: max, buckets: map[string]*rate.Limiter{}}
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

// allow takes one request from caller's bucket at now; when it is empty, it takes nothing
// and says how long until a request would be allowed.
func (l *rateLimiter) allow(caller string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	b := l.buckets[caller]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.evict(now)
		}
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[caller] = b
	}
	l.mu.Unlock()
	r := b.ReserveN(now, 1)
	if delay := r.DelayFrom(now); delay > 0 {
		r.CancelAt(now)
		return false, delay
	}
	return true, 0
}

// evict makes room for a tenth of max; called with l.mu held.
func (l *rateLimiter) evict(now time.Time) {
	for caller, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, caller)
		}
	}
	for caller := range l.buckets {
		if len(l.buckets) < l.max-l.max/10 {
			break
		}
		delete(l.buckets, caller)
	}
}

func (l *rateLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
