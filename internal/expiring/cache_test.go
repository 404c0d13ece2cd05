package expiring

import (
	"testing"
	"time"
)

func TestCacheIsBounded(t *testing.T) {
	c := NewCache[int, string](10)
	now := time.Now()
	for i := range 100 {
		c.Put(i, "v", now.Add(time.Minute), now)
	}
	if n := c.Len(); n > 10 {
		t.Fatalf("cache holds %d entries, bound is 10", n)
	}
	if _, ok := c.Get(99, now); !ok {
		t.Fatal("the newest entry was evicted")
	}
}

func TestCacheEntriesExpire(t *testing.T) {
	c := NewCache[string, int](10)
	now := time.Now()
	c.Put("a", 1, now.Add(time.Second), now)
	if v, ok := c.Get("a", now.Add(999*time.Millisecond)); !ok || v != 1 {
		t.Fatalf("before expiry: %v %v", v, ok)
	}
	if _, ok := c.Get("a", now.Add(time.Second)); ok {
		t.Fatal("served at its expiry")
	}
	c.Put("b", 2, now, now)
	if c.Len() != 0 {
		t.Fatal("an entry that expires at once was stored")
	}
	expired := NewCache[int, int](2)
	expired.Put(1, 1, now.Add(time.Second), now)
	expired.Put(2, 2, now.Add(time.Hour), now)
	expired.Put(3, 3, now.Add(time.Hour), now.Add(2*time.Second)) // full: the expired entry goes first
	if _, ok := expired.Get(2, now.Add(2*time.Second)); !ok {
		t.Fatal("a live entry was evicted while an expired one was there")
	}
}

// TestCacheUpdate: a read-modify-write sees the live value, an expired entry as absent,
// and keeps what it returns until the expiry it returns.
func TestCacheUpdate(t *testing.T) {
	c := NewCache[string, int](10)
	now := time.Now()
	add := func(at time.Time, ttl time.Duration) (int, bool) {
		var seen int
		var wasLive bool
		c.Update("k", at, func(v int, live bool) (int, time.Time) {
			seen, wasLive = v, live
			return v + 1, at.Add(ttl)
		})
		return seen, wasLive
	}
	if v, live := add(now, time.Second); v != 0 || live {
		t.Fatalf("a missing key was seen as %d live=%v", v, live)
	}
	if v, live := add(now.Add(500*time.Millisecond), time.Second); v != 1 || !live {
		t.Fatalf("a live key was seen as %d live=%v", v, live)
	}
	if v, ok := c.Get("k", now.Add(time.Second)); !ok || v != 2 {
		t.Fatalf("Get after two updates: %d %v (the second update's expiry is 1.5s)", v, ok)
	}
	if v, live := add(now.Add(2*time.Second), time.Second); v != 0 || live {
		t.Fatalf("an expired entry was seen as %d live=%v", v, live)
	}
	add(now.Add(2*time.Second), 0) // returns an expiry of now: the entry goes
	if c.Len() != 0 {
		t.Fatalf("%d entries after an update that expires at once", c.Len())
	}

	none := NewCache[string, int](0)
	none.Update("k", now, func(int, bool) (int, time.Time) { return 1, now.Add(time.Hour) })
	if none.Len() != 0 {
		t.Fatal("a cache of 0 stored an entry")
	}
}

// TestFullCacheDropsExpiredFirstThenATenth: new keys in a full cache evict the expired
// entries first; with none expired, a tenth goes at once, so that a flood of new keys does
// not scan the whole cache for every one.
func TestFullCacheDropsExpiredFirstThenATenth(t *testing.T) {
	now := time.Now()
	c := NewCache[int, int](100)
	for i := range 100 {
		ttl := time.Hour
		if i%2 == 0 {
			ttl = time.Second
		}
		c.Put(i, i, now.Add(ttl), now)
	}
	later := now.Add(time.Minute)
	c.Update(1000, later, func(int, bool) (int, time.Time) { return 1, later.Add(time.Hour) })
	if c.Len() != 51 {
		t.Fatalf("%d entries, want the 50 live ones and the new one", c.Len())
	}
	for i := 1; i < 100; i += 2 {
		if _, ok := c.Get(i, later); !ok {
			t.Fatalf("live entry %d was evicted while expired ones were there", i)
		}
	}
	for i := 2000; c.Len() < 100; i++ {
		c.Put(i, i, later.Add(time.Hour), later)
	}
	c.Put(-1, -1, later.Add(time.Hour), later)
	if n := c.Len(); n > 91 || n < 80 {
		t.Fatalf("a full cache of live entries holds %d after a new key, want room for a tenth (90 and the new one)", n)
	}
	if _, ok := c.Get(-1, later); !ok {
		t.Fatal("the new entry was evicted")
	}
}
