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
