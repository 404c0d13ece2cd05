package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// IssuerRouter sends each token to the verifier of its (unverified) issuer, so that Clerk
// tokens never cost a TokenReview and garbage never costs an apiserver call. Routing only
// picks the verifier; the verifier decides.
type IssuerRouter struct {
	Clerk Verifier
	// ServiceAccounts verifies tokens whose iss is one of ServiceAccountIssuers.
	ServiceAccounts       Verifier
	ServiceAccountIssuers []string
}

// Verify implements Verifier.
func (r *IssuerRouter) Verify(ctx context.Context, token string) (Principal, error) {
	claims, ok := unverifiedClaims(token)
	if !ok {
		return Principal{}, fmt.Errorf("%w: not a JWT", ErrUnauthenticated)
	}
	switch {
	case isClerkIssuer(claims.Issuer) && r.Clerk != nil:
		return r.Clerk.Verify(ctx, token)
	case slices.Contains(r.ServiceAccountIssuers, claims.Issuer) && r.ServiceAccounts != nil:
		return r.ServiceAccounts.Verify(ctx, token)
	}
	return Principal{}, fmt.Errorf("%w: no verifier for issuer %q", ErrUnauthenticated, claims.Issuer)
}

// isClerkIssuer mirrors the issuer rule clerk-sdk-go's jwt.Verify enforces, which it does
// not export; a token routed here on a forged iss still fails that check.
func isClerkIssuer(iss string) bool {
	return strings.HasPrefix(iss, "https://clerk.") || strings.Contains(iss, ".clerk.accounts")
}

type routingClaims struct {
	Issuer string  `json:"iss"`
	Expiry float64 `json:"exp"`
}

// unverifiedClaims reads iss and exp from a compact JWT's payload without verifying it.
func unverifiedClaims(token string) (routingClaims, bool) {
	var c routingClaims
	if len(token) > maxTokenBytes || !looksLikeJWT(token) {
		return c, false
	}
	payload := token[strings.IndexByte(token, '.')+1 : strings.LastIndexByte(token, '.')]
	data, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(data, &c) != nil {
		return c, false
	}
	return c, true
}

// unverifiedExpiry is the token's exp claim, for bounding how long a review is cached.
func unverifiedExpiry(token string) (time.Time, bool) {
	c, ok := unverifiedClaims(token)
	if !ok || c.Expiry <= 0 {
		return time.Time{}, false
	}
	return time.Unix(int64(c.Expiry), 0), true
}
