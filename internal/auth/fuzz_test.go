package auth

import (
	"context"
	"strings"
	"testing"
	"time"
)

// FuzzVerifyHeader runs arbitrary Authorization headers through extraction and verification:
// nothing panics, and nothing but a token signed by the configured key authenticates.
func FuzzVerifyHeader(f *testing.F) {
	signer := mustSigner(f, "k1")
	v, err := NewClerkVerifier(ClerkConfig{JWTKeyPEM: signer.PublicKeyPEM(), CacheSize: 64})
	if err != nil {
		f.Fatal(err)
	}
	// Well-formed and correctly signed, but not valid for another hour (nbf): mutations near
	// it exercise deep parsing, yet none may authenticate.
	valid := mustSign(f, signer, claimsAt("user_A", time.Now().Add(time.Hour)))
	parts := strings.Split(valid, ".")
	for _, seed := range []string{
		"", "Bearer", "Bearer ", "bearer x", "Basic abc", "Bearer a.b.c", "Bearer ...", "Bearer a..c",
		"Bearer " + parts[0] + "." + parts[1] + ".", "Bearer " + parts[0] + ".e30." + parts[2],
		"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyX0EifQ.", "Bearer " + valid + "x",
		"Bearer " + strings.Repeat("A", 9000),
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
	})
}
