package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/clerktest"
	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/gitread/usercredits-operator/test/framework"
)

func mustSigner(t testing.TB, kid string) *Signer {
	t.Helper()
	s, err := NewSigner(kid)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// claimsAt are valid session claims for user at now, to be edited per case.
func claimsAt(user string, now time.Time) map[string]any {
	return map[string]any{"iss": DevIssuer, "sub": user, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Minute).Unix()}
}

func mustSign(t testing.TB, s *Signer, claims map[string]any) string {
	t.Helper()
	tok, err := s.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func b64(v any) string {
	data, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(data)
}

// clerkAuthenticator is an Authenticator for Clerk tokens only, on clock.
func clerkAuthenticator(t testing.TB, cfg ClerkConfig, clock clerk.Clock, edit ...func(*Limits)) *Authenticator {
	t.Helper()
	limits := DefaultLimits()
	for _, e := range edit {
		e(&limits)
	}
	if clock == nil {
		clock = clerk.NewClock()
	}
	a, err := NewAuthenticator(Config{Clerk: &cfg, Limits: limits, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestClerkVerifierWithPEMKey(t *testing.T) {
	now := time.Now()
	clock := clerktest.NewClockAt(now)
	signer := mustSigner(t, "ins_1")
	v := clerkAuthenticator(t, ClerkConfig{JWTKeyPEM: signer.PublicKeyPEM()}, clock)
	other := mustSigner(t, "ins_1") // same kid, different key

	edit := func(f func(map[string]any)) map[string]any {
		c := claimsAt("user_A", now)
		f(c)
		return c
	}
	hs256, err := josejwt.Signed(mustHS256(t, []byte(signer.PublicKeyPEM()))).Claims(claimsAt("user_A", now)).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	header := b64(map[string]string{"alg": "none", "typ": "JWT", "kid": "ins_1"})
	algNone := header + "." + b64(claimsAt("user_A", now)) + ".c2ln"
	valid := mustSign(t, signer, claimsAt("user_A", now))

	rejected := map[string]string{
		"expired":           mustSign(t, signer, edit(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() })),
		"not yet valid":     mustSign(t, signer, edit(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() })),
		"no exp":            mustSign(t, signer, edit(func(c map[string]any) { delete(c, "exp") })),
		"no sub":            mustSign(t, signer, edit(func(c map[string]any) { delete(c, "sub") })),
		"foreign issuer":    mustSign(t, signer, edit(func(c map[string]any) { c["iss"] = "https://evil.example.com" })),
		"wrong key":         mustSign(t, other, claimsAt("user_A", now)),
		"alg none":          algNone,
		"alg none no sig":   header + "." + b64(claimsAt("user_A", now)) + ".",
		"HS256 confusion":   hs256,
		"garbage":           "not-a-token",
		"three dots":        "a.b.c",
		"tampered payload":  strings.Split(valid, ".")[0] + "." + b64(claimsAt("user_B", now)) + "." + strings.Split(valid, ".")[2],
		"truncated":         valid[:len(valid)-5],
		"empty":             "",
		"extra segment":     valid + ".x",
		"encrypted (5 seg)": "a.b.c.d.e",
	}
	for name, token := range rejected {
		if p, err := v.Verify(context.Background(), token); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: want ErrUnauthenticated, got %+v, %v", name, p, err)
		}
	}

	p, err := v.Verify(context.Background(), valid)
	if err != nil || p.UserID != "user_A" || p.Kind != KindClerkUser {
		t.Fatalf("valid token: %+v, %v", p, err)
	}
	// Cached now; but the cache must not outlive exp.
	clock.Advance(2 * time.Minute)
	if _, err := v.Verify(context.Background(), valid); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("expired token served from cache: %v", err)
	}
}

func mustHS256(t *testing.T, secret []byte) jose.Signer {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "ins_1"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestClerkVerifierAuthorizedParties(t *testing.T) {
	now := time.Now()
	signer := mustSigner(t, "k")
	v := clerkAuthenticator(t, ClerkConfig{JWTKeyPEM: signer.PublicKeyPEM(), AuthorizedParties: []string{"https://app.example.com"}}, nil)
	for azp, want := range map[string]bool{"https://app.example.com": true, "https://evil.example.com": false, "": false} {
		c := claimsAt("user_A", now)
		if azp != "" {
			c["azp"] = azp
		}
		_, err := v.Verify(context.Background(), mustSign(t, signer, c))
		if (err == nil) != want {
			t.Errorf("azp %q: accepted=%v, want %v (%v)", azp, err == nil, want, err)
		}
	}
}

// jwksVerifier serves signer's JWKS from a loopback fake of Clerk and returns an
// Authenticator that fetches it, on a clock the test controls.
func jwksVerifier(t *testing.T, signer *Signer, clock clerk.Clock, refetch time.Duration) (*Authenticator, *framework.FakeClerk) {
	t.Helper()
	clerkAPI := framework.NewFakeClerk(signer.JWKS())
	t.Cleanup(clerkAPI.Close)
	v := clerkAuthenticator(t, ClerkConfig{SecretKey: clerkAPI.SecretKey, APIURL: clerkAPI.Server.URL}, clock,
		func(l *Limits) { l.KeyRefetchInterval = refetch })
	return v, clerkAPI
}

func TestClerkVerifierJWKSFetchCacheAndRotation(t *testing.T) {
	now := time.Now()
	clock := clerktest.NewClockAt(now)
	first := mustSigner(t, "kid_1")
	v, clerkAPI := jwksVerifier(t, first, clock, 10*time.Second)
	ctx := context.Background()
	for i := range 5 {
		if _, err := v.Verify(ctx, mustSign(t, first, claimsAt(fmt.Sprint("user_", i), now))); err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
	}
	if n := clerkAPI.Fetches.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times for one key, want 1", n)
	}

	// Forged kids do not turn into a fetch per request.
	for i := range 20 {
		c := claimsAt("user_A", now)
		forged := mustSigner(t, fmt.Sprint("forged_", i))
		if _, err := v.Verify(ctx, mustSign(t, forged, c)); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("forged kid accepted: %v", err)
		}
	}
	if n := clerkAPI.Fetches.Load(); n != 1 {
		t.Fatalf("unknown kids caused %d fetches within the refetch interval, want 1 in total", n)
	}

	// Rotation: Clerk now signs with a new kid; after the interval it is fetched once.
	second := mustSigner(t, "kid_2")
	clerkAPI.SetJWKS(second.JWKS())
	clock.Advance(11 * time.Second)
	now = clock.Now()
	if _, err := v.Verify(ctx, mustSign(t, second, claimsAt("user_new", now))); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	if n := clerkAPI.Fetches.Load(); n != 2 {
		t.Fatalf("fetches after rotation = %d, want 2", n)
	}
}

func TestClerkVerifierJWKSDownThenBack(t *testing.T) {
	now := time.Now()
	clock := clerktest.NewClockAt(now)
	signer := mustSigner(t, "kid_1")
	v, clerkAPI := jwksVerifier(t, signer, clock, time.Second)
	clerkAPI.Down.Store(true)
	token := mustSign(t, signer, claimsAt("user_A", now))
	if _, err := v.Verify(context.Background(), token); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("JWKS down: want ErrUnauthenticated, got %v", err)
	}
	clerkAPI.Down.Store(false)
	clock.Advance(2 * time.Second)
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Fatalf("JWKS back: %v", err)
	}
}

func TestClerkVerifierSlowJWKSIsBoundedByContext(t *testing.T) {
	v, clerkAPI := jwksVerifier(t, mustSigner(t, "kid_1"), clerk.NewClock(), 0)
	clerkAPI.Delay.Store(int64(time.Second))
	// The token is signed before the clock starts: generating a key is not what is timed.
	token := mustSign(t, mustSigner(t, "kid_1"), claimsAt("user_A", time.Now()))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := v.Verify(ctx, token)
	if !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("slow JWKS: want ErrUnauthenticated, got %v", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Fatalf("Verify waited %v for a slow JWKS despite a 100ms deadline", elapsed)
	}
}

func TestClerkNeedsAKey(t *testing.T) {
	if _, err := NewAuthenticator(Config{Clerk: &ClerkConfig{}, Limits: DefaultLimits()}); err == nil {
		t.Fatal("no key configured: want an error")
	}
	if _, err := NewAuthenticator(Config{Clerk: &ClerkConfig{JWTKeyPEM: "not a pem"}, Limits: DefaultLimits()}); err == nil {
		t.Fatal("bad PEM: want an error")
	}
}

func TestSlowJWKSUnderConcurrencyStaysBounded(t *testing.T) {
	signer := mustSigner(t, "kid_1")
	v, clerkAPI := jwksVerifier(t, signer, clerk.NewClock(), time.Minute)
	clerkAPI.Delay.Store(int64(time.Second))
	token := mustSign(t, signer, claimsAt("user_A", time.Now()))
	before := runtime.NumGoroutine()

	var wg sync.WaitGroup
	start := time.Now()
	var late atomic.Int32
	for range 50 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			t0 := time.Now()
			if _, err := v.Verify(ctx, token); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("slow JWKS: want ErrUnauthenticated, got %v", err)
			}
			if time.Since(t0) > 500*time.Millisecond {
				late.Add(1)
			}
		})
	}
	wg.Wait()
	if n := late.Load(); n > 0 {
		t.Fatalf("%d of 50 requests outlived their 100ms deadline waiting for a slow JWKS (all done after %v)", n, time.Since(start))
	}
	if fetches := clerkAPI.Fetches.Load(); fetches > 1 {
		t.Fatalf("%d concurrent JWKS fetches; one at a time is the rule", fetches)
	}
	// Nothing keeps running once the slow fetch is over.
	framework.Eventually(t, 5*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > before+5 {
			return fmt.Errorf("%d goroutines, %d before", n, before)
		}
		return nil
	})
	// The slow fetch completed in the background of the refused requests: the key is known now.
	framework.Eventually(t, 5*time.Second, func() error {
		_, err := v.Verify(context.Background(), token)
		return err
	})
}
