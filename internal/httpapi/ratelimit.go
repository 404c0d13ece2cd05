package httpapi

import (
	"math"
	"time"

	"github.com/gitread/usercredits-operator/internal/expiring"
)

// maxRateLimitedCallers bounds the token buckets kept: one per caller seen recently.
const maxRateLimitedCallers = 100_000

// rateLimiter keeps one token bucket per caller, so one caller's limit never slows another.
// The buckets live in an expiring.Cache whose entries expire when their bucket would be full
// again: a full bucket is the same as a fresh one, so a refilled caller costs no memory and
// is what the cache drops first when full; only under a flood of distinct busy callers does
// it drop arbitrary ones. Memory is bounded whatever the number of callers.
type rateLimiter struct {
	perSecond float64
	burst     float64
	buckets   *expiring.Cache[string, bucket]
}

// bucket is a caller's tokens as of at; it refills at perSecond up to burst.
type bucket struct {
	tokens float64
	at     time.Time
}

// newRateLimiter allows perSecond requests per caller with a burst of twice that, keeping at
// most max buckets; nil (no limit) when perSecond is 0 or less.
func newRateLimiter(perSecond float64, max int) *rateLimiter {
	if perSecond <= 0 {
		return nil
	}
	return &rateLimiter{perSecond: perSecond, burst: float64(max1(int(2 * perSecond))), buckets: expiring.NewCache[string, bucket](max)}
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

// allow takes one request from caller's bucket at now; when it is empty, it takes nothing
// and says how long until a request would be allowed. One lock and one lookup.
func (l *rateLimiter) allow(caller string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	allowed, wait := false, time.Duration(0)
	l.buckets.Update(caller, now, func(b bucket, live bool) (bucket, time.Time) {
		tokens := l.burst // a missing or expired bucket is a full one
		if live {
			tokens = min(l.burst, b.tokens+max(0, now.Sub(b.at).Seconds())*l.perSecond)
		}
		if tokens >= 1 {
			tokens--
			allowed = true
		} else {
			wait = l.duration(1 - tokens)
		}
		return bucket{tokens: tokens, at: now}, now.Add(l.duration(l.burst - tokens))
	})
	return allowed, wait
}

// duration is how long the bucket takes to refill n tokens, rounded up.
func (l *rateLimiter) duration(n float64) time.Duration {
	return time.Duration(math.Ceil(n / l.perSecond * float64(time.Second)))
}

func (l *rateLimiter) len() int { return l.buckets.Len() }
