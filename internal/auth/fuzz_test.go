package auth

import (
	"context"
	"strings"
	"testing"
	"time"
)

// FuzzVerifyHeader runs arbitrary Authorization headers through extraction, parsing, issuer
// routing and verification: nothing panics, nothing but a token signed by a configured key
// authenticates, and nothing reaches TokenReview unless a cluster key signed it.
func FuzzVerifyHeader(f *testing.F) {
	clerkSigner := mustSigner(f, "k1")
	cluster := newFakeCluster(f)
	v := cluster.authenticator(f, clerkSigner, time.Now)
	// Well-formed and correctly signed, but not valid for another hour (nbf): mutations near
	// them exercise deep parsing, yet none may authenticate or reach TokenReview.
	later := time.Now().Add(time.Hour)
	valid := mustSign(f, clerkSigner, claimsAt("user_A", later))
	validSA := cluster.token(f, worker, []string{saAudience}, later)
	parts := strings.Split(valid, ".")
	for _, seed := range []string{
		"", "Bearer", "Bearer ", "bearer x", "Basic abc", "Bearer a.b.c", "Bearer ...", "Bearer a..c",
		"Bearer " + parts[0] + "." + parts[1] + ".", "Bearer " + parts[0] + ".e30." + parts[2],
		"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyX0EifQ.", "Bearer " + valid + "x",
		"Bearer " + strings.Repeat("A", 9000), "Bearer " + validSA,
		"Bearer " + unsignedToken(map[string]any{"iss": saIssuer, "sub": worker, "aud": saAudience}),
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
		if p, err := v.Verify(context.Background(), token); err == nil {
			t.Fatalf("forged header %q authenticated as %+v", header, p)
		}
		if n := cluster.reviews.Load(); n != 0 {
			t.Fatalf("header %q reached TokenReview", header)
		}
	})
}

func unsignedToken(claims map[string]any) string {
	return b64(map[string]string{"alg": "RS256", "kid": "k"}) + "." + b64(claims) + ".c2ln"
}
