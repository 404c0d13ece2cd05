package auth

import (
	"context"
	"strings"
	"testing"
	"time"
)

// saIssuer is the ServiceAccount issuer the fuzzed router knows.
const saIssuer = "https://kubernetes.default.svc"

// rejectingReviews stands in for TokenReview: it refuses everything and records the issuer
// of each token that reached it.
type rejectingReviews struct{ lastIssuer string }

func (r *rejectingReviews) Verify(_ context.Context, token string) (Principal, error) {
	c, _ := unverifiedClaims(token)
	r.lastIssuer = c.Issuer
	return Principal{}, ErrUnauthenticated
}

// FuzzVerifyHeader runs arbitrary Authorization headers through extraction, issuer routing
// and verification: nothing panics, nothing but a token signed by the configured key
// authenticates, and only tokens naming the ServiceAccount issuer reach TokenReview.
func FuzzVerifyHeader(f *testing.F) {
	signer := mustSigner(f, "k1")
	clerkVerifier, err := NewClerkVerifier(ClerkConfig{JWTKeyPEM: signer.PublicKeyPEM(), CacheSize: 64})
	if err != nil {
		f.Fatal(err)
	}
	reviews := &rejectingReviews{}
	v := &IssuerRouter{Clerk: clerkVerifier, ServiceAccounts: reviews, ServiceAccountIssuers: []string{saIssuer}}
	// Well-formed and correctly signed, but not valid for another hour (nbf): mutations near
	// it exercise deep parsing, yet none may authenticate.
	valid := mustSign(f, signer, claimsAt("user_A", time.Now().Add(time.Hour)))
	parts := strings.Split(valid, ".")
	for _, seed := range []string{
		"", "Bearer", "Bearer ", "bearer x", "Basic abc", "Bearer a.b.c", "Bearer ...", "Bearer a..c",
		"Bearer " + parts[0] + "." + parts[1] + ".", "Bearer " + parts[0] + ".e30." + parts[2],
		"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyX0EifQ.", "Bearer " + valid + "x",
		"Bearer " + strings.Repeat("A", 9000),
		"Bearer " + unsignedToken(map[string]any{"iss": saIssuer, "sub": "system:serviceaccount:a:b"}),
		"Bearer " + unsignedToken(map[string]any{"iss": "https://clerk.x.dev", "sub": "user_A"}),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		token, ok := BearerToken(header)
		if !ok {
			return
		}
		if token == "" || strings.ContainsAny(token, " \t") {
			t.Fatalf("BearerToken(%q) returned %q", header, token)
		}
		reviews.lastIssuer = "-"
		if p, err := v.Verify(context.Background(), token); err == nil {
			t.Fatalf("forged header %q authenticated as %+v", header, p)
		}
		if reviews.lastIssuer != "-" && reviews.lastIssuer != saIssuer {
			t.Fatalf("a token with issuer %q was sent to TokenReview", reviews.lastIssuer)
		}
	})
}
