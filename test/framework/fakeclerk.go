package framework

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"
)

// FakeClerk serves GET /jwks the way Clerk's Backend API does, on loopback, so that the
// JWKS path of token verification is tested without the network.
type FakeClerk struct {
	Server *httptest.Server
	// SecretKey is the Bearer secret the fake requires.
	SecretKey string
	// Fetches counts JWKS requests.
	Fetches atomic.Int32
	// Down makes the endpoint answer 503.
	Down atomic.Bool
	// Delay slows every answer.
	Delay atomic.Int64 // nanoseconds
	jwks  atomic.Value
}

// NewFakeClerk starts a fake serving jwks (any JSON-encodable key set); Close stops it.
func NewFakeClerk(jwks any) *FakeClerk {
	f := &FakeClerk{SecretKey: "sk_test_fake"}
	f.SetJWKS(jwks)
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.Fetches.Add(1)
		time.Sleep(time.Duration(f.Delay.Load()))
		if r.URL.Path != "/jwks" || r.Header.Get("Authorization") != "Bearer "+f.SecretKey {
			http.Error(w, `{"errors":[{"code":"resource_not_found"}]}`, http.StatusNotFound)
			return
		}
		if f.Down.Load() {
			http.Error(w, `{"errors":[{"code":"internal_clerk_error"}]}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(f.jwks.Load())
	}))
	return f
}

// SetJWKS replaces the served key set (key rotation).
func (f *FakeClerk) SetJWKS(jwks any) { f.jwks.Store(jwks) }

// Close stops the fake.
func (f *FakeClerk) Close() { f.Server.Close() }
