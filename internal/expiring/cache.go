// Package expiring is a bounded map whose entries expire: the caches of accepted tokens,
// authorization decisions and refusal confirmations, and the API's per-caller token
// buckets (whose entries expire when the bucket would be full again).
package expiring

import (
	"sync"
	"time"
)

// Cache is a bounded map whose entries expire. When full, expired entries go first, then
// arbitrary ones (Go's map order): the hot path stays one lock and one lookup, with no
// recency list to maintain.
type Cache[K comparable, V any] struct {
	mu      sync.RWMutex
	max     int
	entries map[K]entry[V]
}

type entry[V any] struct {
	value   V
	expires time.Time
}

// NewCache returns a cache of at most max entries; 0 caches nothing.
func NewCache[K comparable, V any](max int) *Cache[K, V] {
	return &Cache[K, V]{max: max, entries: make(map[K]entry[V])}
}

// Get returns key's value unless it is missing or expired at now. Readers share the lock;
// only removing an expired entry takes it alone.
func (c *Cache[K, V]) Get(key K, now time.Time) (V, bool) {
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.value, true
	}
	if ok {
		c.mu.Lock()
		if e, still := c.entries[key]; still && !now.Before(e.expires) {
			delete(c.entries, key)
		}
		c.mu.Unlock()
	}
	var zero V
	return zero, false
}

// Put stores value under key until expires (nothing when that is not after now).
func (c *Cache[K, V]) Put(key K, value V, expires, now time.Time) {
	if c.max <= 0 || !now.Before(expires) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok {
		c.makeRoom(now)
	}
	c.entries[key] = entry[V]{value: value, expires: expires}
}

// Update is a read-modify-write of key's entry under the cache's lock, for callers whose
// next value depends on the current one (the API's rate limiter). fn gets the value and
// whether it is live at now (the zero value and false when missing or expired) and returns
// the value to keep and when it expires; one that expires by now is dropped. One lock and
// one lookup: fn must be quick and must not call the cache.
func (c *Cache[K, V]) Update(key K, now time.Time, fn func(value V, live bool) (V, time.Time)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, found := c.entries[key]
	live := found && now.Before(e.expires)
	if !live {
		e.value = *new(V)
	}
	value, expires := fn(e.value, live)
	switch {
	case c.max <= 0:
	case !now.Before(expires):
		if found {
			delete(c.entries, key)
		}
	default:
		if !found {
			c.makeRoom(now)
		}
		c.entries[key] = entry[V]{value: value, expires: expires}
	}
}

// makeRoom, when the cache is full, drops the expired entries, then arbitrary ones (Go's
// map order) until a tenth of it is free, so that a flood of new keys pays for the scan
// once per max/10 of them rather than on every one. Called with c.mu held.
func (c *Cache[K, V]) makeRoom(now time.Time) {
	if len(c.entries) < c.max {
		return
	}
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	for k := range c.entries {
		if len(c.entries) < c.max-c.max/10 {
			break
		}
		delete(c.entries, k)
	}
}

// Len is the number of entries, expired ones included.
func (c *Cache[K, V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
