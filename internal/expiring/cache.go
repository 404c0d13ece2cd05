// Package expiring is a bounded map whose entries expire: the caches of accepted tokens,
// authorization decisions and refusal confirmations.
package expiring

import (
	"sync"
	"time"
)

// Cache is a bounded map whose entries expire. When full, expired entries go first, then
// arbitrary ones (Go's map order): the hot path stays one lock and one lookup.
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
	if len(c.entries) >= c.max {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = entry[V]{value: value, expires: expires}
}

// Len is the number of entries, expired ones included.
func (c *Cache[K, V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
