package auth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/jwks"
	"github.com/clerk/clerk-sdk-go/v2/jwt"
)

// ClerkConfig configures a ClerkVerifier. Exactly one of JWTKeyPEM and SecretKey is needed.
type ClerkConfig struct {
	// JWTKeyPEM is the instance's PEM public key (CLERK_JWT_KEY): verification needs no network.
	JWTKeyPEM string
	// SecretKey (CLERK_SECRET_KEY) lets the verifier fetch the JWKS from the Backend API.
	SecretKey string
	// APIURL is the Backend API base URL; empty means Clerk's own.
	APIURL string
	// AuthorizedParties, when not empty, are the only accepted azp claims.
	AuthorizedParties []string
	// Leeway tolerates clock skew on exp and nbf.
	Leeway time.Duration
	// CacheSize bounds the verified-token cache; 0 disables it.
	CacheSize int
	// JWKSRefetchInterval is the least time between two JWKS fetches.
	JWKSRefetchInterval time.Duration
	// Clock replaces time.Now in tests.
	Clock clerk.Clock
}

// ClerkVerifier verifies Clerk session tokens with clerk-sdk-go's jwt.Verify.
type ClerkVerifier struct {
	staticKey *clerk.JSONWebKey
	keys      *keySet
	parties   []string
	leeway    time.Duration
	clock     clerk.Clock
	cache     *expiringCache[[sha256.Size]byte, Principal]
}

// NewClerkVerifier builds a verifier from cfg.
func NewClerkVerifier(cfg ClerkConfig) (*ClerkVerifier, error) {
	v := &ClerkVerifier{parties: cfg.AuthorizedParties, leeway: cfg.Leeway, clock: cfg.Clock, cache: newExpiringCache[[sha256.Size]byte, Principal](cfg.CacheSize)}
	if v.clock == nil {
		v.clock = clerk.NewClock()
	}
	switch {
	case cfg.JWTKeyPEM != "":
		key, err := clerk.JSONWebKeyFromPEM(cfg.JWTKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("CLERK_JWT_KEY: %w", err)
		}
		v.staticKey = key
	case cfg.SecretKey != "":
		backend := &clerk.BackendConfig{
			Key:        clerk.String(cfg.SecretKey),
			HTTPClient: &http.Client{Timeout: 5 * time.Second},
		}
		if cfg.APIURL != "" {
			backend.URL = clerk.String(cfg.APIURL)
		}
		interval := cfg.JWKSRefetchInterval
		if interval <= 0 {
			interval = 5 * time.Second
		}
		v.keys = newKeySet(&jwks.Client{Backend: clerk.NewBackend(backend)}, interval, v.clock.Now)
	default:
		return nil, fmt.Errorf("no Clerk key: set CLERK_JWT_KEY or CLERK_SECRET_KEY")
	}
	return v, nil
}

// Verify checks a Clerk session token: signature, alg, issuer, exp/nbf and azp.
func (v *ClerkVerifier) Verify(ctx context.Context, token string) (Principal, error) {
	if !looksLikeJWT(token) {
		return Principal{}, fmt.Errorf("%w: not a JWT", ErrUnauthenticated)
	}
	now := v.clock.Now()
	cacheKey := sha256.Sum256([]byte(token))
	if p, ok := v.cache.get(cacheKey, now); ok {
		return p, nil
	}

	params := &jwt.VerifyParams{Token: token, JWK: v.staticKey, Clock: v.clock, Leeway: v.leeway}
	if len(v.parties) > 0 {
		params.AuthorizedPartyHandler = func(azp string) bool { return slices.Contains(v.parties, azp) }
	}
	if params.JWK == nil {
		unverified, err := jwt.Decode(ctx, &jwt.DecodeParams{Token: token})
		if err != nil {
			return Principal{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
		}
		if params.JWK, err = v.keys.key(ctx, unverified.KeyID); err != nil {
			return Principal{}, err
		}
	}
	claims, err := jwt.Verify(ctx, params)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	// jwt.Verify accepts a token without exp; a session token always has one, and the
	// cache must never outlive it.
	if claims.Expiry == nil {
		return Principal{}, fmt.Errorf("%w: token has no exp", ErrUnauthenticated)
	}
	if claims.Subject == "" {
		return Principal{}, fmt.Errorf("%w: token has no sub", ErrUnauthenticated)
	}
	p := Principal{Kind: KindClerkUser, UserID: claims.Subject}
	v.cache.put(cacheKey, p, time.Unix(*claims.Expiry, 0).Add(v.leeway), now)
	return p, nil
}
