package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// verificationKey is a public key and the one signature algorithm it may verify.
type verificationKey struct {
	key any
	alg string
}

// keySource finds the key a token names by its kid.
type keySource interface {
	lookup(ctx context.Context, kid string) (verificationKey, error)
}

// staticKey is a single configured key (CLERK_JWT_KEY): every kid maps to it.
type staticKey verificationKey

func (s staticKey) lookup(context.Context, string) (verificationKey, error) {
	return verificationKey(s), nil
}

// keySet caches an issuer's published keys. An unknown kid triggers a refetch, at most
// once per minInterval and one at a time, so that key rotation is picked up without
// letting forged kids turn every request into a fetch. A fetch is not tied to the request
// that started it: when a slow endpoint outlives that request's deadline, the keys still
// arrive for the requests after it.
type keySet struct {
	fetch        func(ctx context.Context) (map[string]verificationKey, error)
	minInterval  time.Duration
	fetchTimeout time.Duration
	now          func() time.Time

	mu        sync.Mutex
	keys      map[string]verificationKey
	lastFetch time.Time
	lastErr   error
	inflight  chan struct{} // closed when the running fetch ends; nil when none runs
}

func newKeySet(fetch func(context.Context) (map[string]verificationKey, error), limits Limits, now func() time.Time) *keySet {
	return &keySet{fetch: fetch, minInterval: limits.KeyRefetchInterval, fetchTimeout: limits.KeyFetchTimeout, now: now}
}

// lookup returns the key for kid, fetching the key set when kid is unknown and the rate
// allows. Waiting for a fetch honors ctx.
func (s *keySet) lookup(ctx context.Context, kid string) (verificationKey, error) {
	if kid == "" {
		return verificationKey{}, fmt.Errorf("%w: token has no kid", ErrUnauthenticated)
	}
	s.mu.Lock()
	if k, ok := s.keys[kid]; ok {
		s.mu.Unlock()
		return k, nil
	}
	if s.inflight == nil && (s.lastFetch.IsZero() || s.now().Sub(s.lastFetch) >= s.minInterval) {
		s.inflight = make(chan struct{})
		go s.refresh(s.inflight)
	}
	wait := s.inflight
	s.mu.Unlock()
	if wait == nil {
		return verificationKey{}, fmt.Errorf("%w: unknown kid %q", ErrUnauthenticated, kid)
	}

	select {
	case <-wait:
	case <-ctx.Done():
		return verificationKey{}, fmt.Errorf("%w: waiting for the issuer's keys: %v", ErrUnauthenticated, ctx.Err())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	if s.lastErr != nil {
		return verificationKey{}, fmt.Errorf("%w: fetching the issuer's keys: %v", ErrUnauthenticated, s.lastErr)
	}
	return verificationKey{}, fmt.Errorf("%w: unknown kid %q", ErrUnauthenticated, kid)
}

// refresh loads the key set; a failure keeps the keys already known.
func (s *keySet) refresh(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), s.fetchTimeout)
	defer cancel()
	keys, err := s.fetch(ctx)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastFetch, s.lastErr = s.now(), err // failures count too: a down endpoint is not hammered
	if err == nil {
		s.keys = keys
	}
	s.inflight = nil
	close(done)
}

// parseJWKS reads a JSON Web Key Set document into signing keys by kid.
func parseJWKS(doc []byte) (map[string]verificationKey, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, fmt.Errorf("decoding the key set: %w", err)
	}
	keys := make(map[string]verificationKey, len(set.Keys))
	for _, k := range set.Keys {
		if k.KeyID == "" || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		keys[k.KeyID] = verificationKey{key: k.Key, alg: k.Algorithm}
	}
	return keys, nil
}
