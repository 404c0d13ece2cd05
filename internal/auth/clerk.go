package auth

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/jwks"
)

// ClerkConfig configures Clerk session tokens. Exactly one of JWTKeyPEM and SecretKey is needed.
type ClerkConfig struct {
	// JWTKeyPEM is the instance's PEM public key (CLERK_JWT_KEY): verification needs no network.
	JWTKeyPEM string
	// SecretKey (CLERK_SECRET_KEY) lets the verifier fetch the JWKS from the Backend API.
	SecretKey string
	// APIURL is the Backend API base URL; empty means Clerk's own.
	APIURL string
	// AuthorizedParties, when not empty, are the only accepted azp claims.
	AuthorizedParties []string
}

// clerkIssuer verifies Clerk session tokens with the checks of clerk-sdk-go's jwt.Verify
// (algorithm of the key, signature, exp/nbf/iat with leeway, issuer, azp), on the token the
// pipeline parsed once, plus two of its own: exp and sub are required.
type clerkIssuer struct {
	keys    keySource
	parties []string
	leeway  time.Duration
}

func newClerkIssuer(cfg ClerkConfig, limits Limits, now func() time.Time) (*clerkIssuer, error) {
	c := &clerkIssuer{parties: cfg.AuthorizedParties, leeway: limits.Leeway}
	switch {
	case cfg.JWTKeyPEM != "":
		key, err := clerk.JSONWebKeyFromPEM(cfg.JWTKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("CLERK_JWT_KEY: %w", err)
		}
		c.keys = staticKey{key: key.Key, alg: key.Algorithm}
	case cfg.SecretKey != "":
		backend := &clerk.BackendConfig{Key: clerk.String(cfg.SecretKey), HTTPClient: &http.Client{}}
		if cfg.APIURL != "" {
			backend.URL = clerk.String(cfg.APIURL)
		}
		client := &jwks.Client{Backend: clerk.NewBackend(backend)}
		c.keys = newKeySet(func(ctx context.Context) (map[string]verificationKey, error) {
			set, err := client.Get(ctx, &jwks.GetParams{})
			if err != nil {
				return nil, err
			}
			keys := make(map[string]verificationKey, len(set.Keys))
			for _, k := range set.Keys {
				if k != nil && k.KeyID != "" {
					keys[k.KeyID] = verificationKey{key: k.Key, alg: k.Algorithm}
				}
			}
			return keys, nil
		}, limits, now)
	default:
		return nil, fmt.Errorf("no Clerk key: set CLERK_JWT_KEY or CLERK_SECRET_KEY")
	}
	return c, nil
}

func (c *clerkIssuer) verify(ctx context.Context, t *token, now time.Time) (Principal, time.Time, error) {
	k, err := c.keys.lookup(ctx, t.kid)
	if err != nil {
		return Principal{}, time.Time{}, err
	}
	if err := t.verify(k, now, c.leeway); err != nil {
		return Principal{}, time.Time{}, err
	}
	if len(c.parties) > 0 && !slices.Contains(c.parties, t.claims.AuthorizedParty) {
		return Principal{}, time.Time{}, fmt.Errorf("%w: invalid authorized party %q", ErrUnauthenticated, t.claims.AuthorizedParty)
	}
	if t.claims.Subject == "" {
		return Principal{}, time.Time{}, fmt.Errorf("%w: token has no sub", ErrUnauthenticated)
	}
	return Principal{Kind: KindClerkUser, UserID: t.claims.Subject}, t.expiry(), nil
}

// isClerkIssuer mirrors the issuer rule of clerk-sdk-go's jwt.Verify, which it does not
// export. Clerk proxy URLs and satellite domains are not supported.
func isClerkIssuer(iss string) bool {
	return strings.HasPrefix(iss, "https://clerk.") || strings.Contains(iss, ".clerk.accounts")
}
