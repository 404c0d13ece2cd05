package auth

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/jwks"
)

// jwksFetchTimeout bounds one JWKS fetch. A fetch is not tied to the request that started
// it: when a slow endpoint outlives that request's deadline, the keys still arrive for the
// requests after it.
const jwksFetchTimeout = 10 * time.Second

// keySet caches the JWKS of a Clerk instance. An unknown kid triggers a refetch, at most
// once per minInterval and one at a time, so that key rotation is picked up without
// letting forged kids turn every request into a call to Clerk.
type keySet struct {
	client      *jwks.Client
	minInterval time.Duration
	now         func() time.Time

	mu        sync.Mutex
	keys      map[string]*clerk.JSONWebKey
	lastFetch time.Time
	lastErr   error
	inflight  chan struct{} // closed when the running fetch ends; nil when none runs
}

func newKeySet(client *jwks.Client, minInterval time.Duration, now func() time.Time) *keySet {
	return &keySet{client: client, minInterval: minInterval, now: now, keys: map[string]*clerk.JSONWebKey{}}
}

// key returns the JWK for kid, fetching the key set when kid is unknown and the rate
// allows. Waiting for a fetch honors ctx.
func (s *keySet) key(ctx context.Context, kid string) (*clerk.JSONWebKey, error) {
	if kid == "" {
		return nil, fmt.Errorf("%w: token has no kid", ErrUnauthenticated)
	}
	s.mu.Lock()
	if k := s.keys[kid]; k != nil {
		s.mu.Unlock()
		return k, nil
	}
	if s.inflight == nil && (s.lastFetch.IsZero() || s.now().Sub(s.lastFetch) >= s.minInterval) {
		s.inflight = make(chan struct{})
		go s.fetch(s.inflight)
	}
	wait := s.inflight
	s.mu.Unlock()
	if wait == nil {
		return nil, fmt.Errorf("%w: unknown kid %q", ErrUnauthenticated, kid)
	}

	select {
	case <-wait:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for the JWKS: %v", ErrUnauthenticated, ctx.Err())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.keys[kid]; k != nil {
		return k, nil
	}
	if s.lastErr != nil {
		return nil, fmt.Errorf("%w: fetching JWKS: %v", ErrUnauthenticated, s.lastErr)
	}
	return nil, fmt.Errorf("%w: unknown kid %q", ErrUnauthenticated, kid)
}

// fetch loads the key set; a failure keeps the keys already known.
func (s *keySet) fetch(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), jwksFetchTimeout)
	defer cancel()
	set, err := s.client.Get(ctx, &jwks.GetParams{})

	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastFetch, s.lastErr = s.now(), err // failures count too: a down endpoint is not hammered
	if err == nil && set != nil {
		s.keys = make(map[string]*clerk.JSONWebKey, len(set.Keys))
		for _, key := range set.Keys {
			if key != nil && key.KeyID != "" {
				s.keys[key.KeyID] = key
			}
		}
	}
	s.inflight = nil
	close(done)
}
