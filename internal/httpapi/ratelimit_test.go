package httpapi

import (
	"fmt"
	"testing"
	"time"
)

func TestRateLimiterPerCaller(t *testing.T) {
	l := newRateLimiter(10, 100)
	now := time.Now()
	allowed := 0
	var wait time.Duration
	for range 50 {
		ok, w := l.allow("a", now)
		if ok {
			allowed++
		} else {
			wait = w
		}
	}
	if allowed != 20 {
		t.Fatalf("burst allowed %d, want 20 (twice the rate)", allowed)
	}
	if wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("Retry-After source %v, want up to one token's time (100ms)", wait)
	}
	if ok, _ := l.allow("b", now); !ok {
		t.Fatal("another caller was limited by the first one")
	}
	if ok, _ := l.allow("a", now.Add(150*time.Millisecond)); !ok {
		t.Fatal("the bucket did not refill")
	}
	if newRateLimiter(0, 100) != nil {
		t.Fatal("rate 0 must mean no limiter")
	}
	var off *rateLimiter
	if ok, _ := off.allow("a", now); !ok {
		t.Fatal("no limiter must allow everything")
	}
}

func TestRateLimiterMemoryIsBounded(t *testing.T) {
	l := newRateLimiter(1, 1000)
	start := time.Now()
	at := func(i int) time.Time { return start.Add(time.Duration(i) * 10 * time.Millisecond) }
	for i := range 5000 {
		if i == 990 { // a caller uses up its burst just before the limiter first fills up
			l.allow("busy", at(i))
			l.allow("busy", at(i))
		}
		l.allow(fmt.Sprint("caller-", i), at(i))
		if n := l.len(); n > 1000 {
			t.Fatalf("%d buckets kept, bound is 1000", n)
		}
		if i == 1000 {
			// Callers idle for a second have refilled and were dropped; the busy one was not.
			if ok, _ := l.allow("busy", at(i)); ok {
				t.Fatal("a caller that had used its burst got a fresh one after eviction")
			}
		}
	}
}

// TestRateLimiterRefillsAtTheRate: an empty bucket earns one request per 1/rate, and says
// how long until the next one.
func TestRateLimiterRefillsAtTheRate(t *testing.T) {
	l := newRateLimiter(10, 100)
	now := time.Now()
	for range 20 {
		l.allow("a", now)
	}
	if ok, wait := l.allow("a", now.Add(50*time.Millisecond)); ok || wait < 49*time.Millisecond || wait > 51*time.Millisecond {
		t.Fatalf("half a token in: allowed=%v wait=%v, want refused, 50ms", ok, wait)
	}
	if ok, _ := l.allow("a", now.Add(100*time.Millisecond)); !ok {
		t.Fatal("one token's time later: refused")
	}
	if ok, _ := l.allow("a", now.Add(100*time.Millisecond)); ok {
		t.Fatal("one token's time later: allowed twice")
	}
	// After 2s the bucket is full again: its entry expired, and it starts as a fresh one.
	allowed := 0
	for range 30 {
		if ok, _ := l.allow("a", now.Add(10*time.Second)); ok {
			allowed++
		}
	}
	if allowed != 20 {
		t.Fatalf("a refilled bucket allowed %d at once, want the burst of 20", allowed)
	}
}

// TestRateLimiterLimitsAtTheFlagsBounds: the smallest and the largest limit the flags accept
// still limit: at minRateLimit the second request waits the ~31 years one request takes to
// refill (a Duration that fits), at maxRateLimit the burst is twice the limit.
func TestRateLimiterLimitsAtTheFlagsBounds(t *testing.T) {
	now := time.Now()
	slow := newRateLimiter(minRateLimit, 100)
	if ok, _ := slow.allow("a", now); !ok {
		t.Fatal("at the smallest limit, the first request: refused")
	}
	if ok, wait := slow.allow("a", now.Add(time.Hour)); ok || wait < time.Duration(1/minRateLimit)*time.Second-time.Hour-time.Second {
		t.Errorf("at the smallest limit, the second request an hour later: allowed=%v wait=%v; want refused for ~%v", ok, wait, time.Duration(1/minRateLimit)*time.Second)
	}
	if fast := newRateLimiter(maxRateLimit, 100); fast.burst != 2*maxRateLimit {
		t.Errorf("at the largest limit, burst %v; want %v", fast.burst, 2*maxRateLimit)
	}
}
