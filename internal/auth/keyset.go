package auth

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/jwks"
)

// keySet caches the JWKS of a Clerk instance. An unknown kid triggers a refetch, at most
// once per minInterval, so that key rotation is picked up without letting forged kids
// turn every request into a call to Clerk.
type keySet struct {
	client      *jwks.Client
	minInterval time.Duration
	now         func() time.Time

	mu        sync.RWMutex
	keys      map[string]*clerk.JSONWebKey
	lastFetch time.Time
	fetchMu   sync.Mutex // one fetch at a time
}

func newKeySet(client *jwks.Client, minInterval time.Duration, now func() time.Time) *keySet {
	return &keySet{client: client, minInterval: minInterval, now: now, keys: map[string]*clerk.JSONWebKey{}}
}

func (s *keySet) lookup(kid string) (*clerk.JSONWebKey, time.Time) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.keys[kid], s.lastFetch
}

// key returns the JWK for kid, fetching the key set when kid is unknown and the rate allows.
func (s *keySet) key(ctx context.Context, kid string) (*clerk.JSONWebKey, error) {
	if kid == "" {
		return nil, fmt.Errorf("%w: token has no kid", ErrUnauthenticated)
	}
	if k, _ := s.lookup(kid); k != nil {
		return k, nil
	}
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	k, last := s.lookup(kid) // another request may have fetched meanwhile
	if k != nil {
		return k, nil
	}
	if !last.IsZero() && s.now().Sub(last) < s.minInterval {
		return nil, fmt.Errorf("%w: unknown kid %q", ErrUnauthenticated, kid)
	}
	set, err := s.client.Get(ctx, &jwks.GetParams{})
	s.mu.Lock()
	s.lastFetch = s.now() // failures count too: a down JWKS endpoint is not hammered
	if err == nil && set != nil {
		s.keys = make(map[string]*clerk.JSONWebKey, len(set.Keys))
		for _, key := range set.Keys {
			if key != nil && key.KeyID != "" {
				s.keys[key.KeyID] = key
			}
		}
	}
	k = s.keys[kid]
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%w: fetching JWKS: %v", ErrUnauthenticated, err)
	}
	if k == nil {
		return nil, fmt.Errorf("%w: unknown kid %q", ErrUnauthenticated, kid)
	}
	return k, nil
}
