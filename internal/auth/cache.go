package auth

import (
	"sync"
	"time"
)

// expiringCache is a bounded map whose entries expire. When full, expired entries go first,
// then arbitrary ones (Go's map order): the hot path stays one lock and one lookup.
type expiringCache[K comparable, V any] struct {
	mu      sync.Mutex
	max     int
	entries map[K]expiringEntry[V]
}

type expiringEntry[V any] struct {
	value   V
	expires time.Time
}

func newExpiringCache[K comparable, V any](max int) *expiringCache[K, V] {
	return &expiringCache[K, V]{max: max, entries: make(map[K]expiringEntry[V])}
}

func (c *expiringCache[K, V]) get(key K, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !now.Before(e.expires) {
		if ok {
			delete(c.entries, key)
		}
		var zero V
		return zero, false
	}
	return e.value, true
}

func (c *expiringCache[K, V]) put(key K, value V, expires, now time.Time) {
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
	c.entries[key] = expiringEntry[V]{value: value, expires: expires}
}

func (c *expiringCache[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
