package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clerk/clerk-sdk-go/v2/clerktest"
	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// saIssuer is the ServiceAccount issuer of the tests' cluster.
	saIssuer   = "https://kubernetes.default.svc"
	saAudience = "credits.gitread.dev"
)

// fakeCluster stands in for the apiserver: it publishes the ServiceAccount signing key and
// answers TokenReviews for the tokens it issued, counting both.
type fakeCluster struct {
	signer       *Signer
	jwksFetches  atomic.Int32
	reviews      atomic.Int32
	audiences    atomic.Value // []string the reviews were sent with
	deleted      atomic.Bool  // the ServiceAccount was deleted: reviews fail
	reviewErr    error
	answerAudsAs []string // overrides the audiences the review answers with
}

func newFakeCluster(t testing.TB) *fakeCluster {
	return &fakeCluster{signer: mustSigner(t, "sa-key-1")}
}

func (f *fakeCluster) jwks(context.Context) ([]byte, error) {
	f.jwksFetches.Add(1)
	return json.Marshal(f.signer.JWKS())
}

func (f *fakeCluster) Create(_ context.Context, tr *authenticationv1.TokenReview, _ metav1.CreateOptions) (*authenticationv1.TokenReview, error) {
	f.reviews.Add(1)
	f.audiences.Store(tr.Spec.Audiences)
	if f.reviewErr != nil {
		return nil, f.reviewErr
	}
	out := tr.DeepCopy()
	var claims struct {
		Sub string `json:"sub"`
	}
	parts := strings.Split(tr.Spec.Token, ".")
	if len(parts) == 3 {
		_ = json.Unmarshal(mustB64Decode(parts[1]), &claims)
	}
	out.Status.Authenticated = !f.deleted.Load()
	out.Status.Audiences = tr.Spec.Audiences
	if f.answerAudsAs != nil {
		out.Status.Audiences = f.answerAudsAs
	}
	out.Status.User = authenticationv1.UserInfo{Username: claims.Sub, UID: "uid-" + claims.Sub, Groups: []string{"system:serviceaccounts"}}
	return out, nil
}

// token signs ServiceAccount claims for sub, bound to aud, edited by edit.
func (f *fakeCluster) token(t testing.TB, sub string, aud []string, now time.Time, edit ...func(map[string]any)) string {
	c := map[string]any{"iss": saIssuer, "sub": sub, "aud": aud, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for _, e := range edit {
		e(c)
	}
	return mustSign(t, f.signer, c)
}

// authenticator accepts Clerk tokens signed by clerkSigner and this cluster's ServiceAccounts.
func (f *fakeCluster) authenticator(t testing.TB, clerkSigner *Signer, clock func() time.Time) *Authenticator {
	t.Helper()
	a, err := NewAuthenticator(Config{
		Clerk:           &ClerkConfig{JWTKeyPEM: clerkSigner.PublicKeyPEM()},
		ServiceAccounts: &ServiceAccountConfig{ServiceAccountSettings: ServiceAccountSettings{Issuers: []string{saIssuer}, Audiences: []string{saAudience}}, JWKS: f.jwks, Reviews: f},
		Limits:          DefaultLimits(),
		Now:             clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

const worker = "system:serviceaccount:apps:worker"

func TestAuthenticatorRoutesEachTokenToItsIssuer(t *testing.T) {
	now := time.Now()
	cluster, clerkSigner := newFakeCluster(t), mustSigner(t, "ins_1")
	a := cluster.authenticator(t, clerkSigner, time.Now)
	if p, err := a.Verify(context.Background(), mustSign(t, clerkSigner, claimsAt("user_A", now))); err != nil || p.Kind != KindClerkUser || p.UserID != "user_A" {
		t.Fatalf("Clerk token: %+v %v", p, err)
	}
	if n := cluster.reviews.Load(); n != 0 {
		t.Fatalf("a Clerk token cost %d TokenReviews", n)
	}
	p, err := a.Verify(context.Background(), cluster.token(t, worker, []string{saAudience}, now))
	if err != nil || p.Kind != KindServiceAccount || p.Username != worker || p.UID == "" {
		t.Fatalf("ServiceAccount token: %+v %v", p, err)
	}
	if n := cluster.reviews.Load(); n != 1 {
		t.Fatalf("%d TokenReviews for one ServiceAccount token, want 1", n)
	}
	if aud := cluster.audiences.Load().([]string); len(aud) != 1 || aud[0] != saAudience {
		t.Fatalf("TokenReview sent with audiences %v, want [%s]", aud, saAudience)
	}
	foreign := mustSigner(t, "x")
	for name, tok := range map[string]string{
		"unknown issuer": mustSign(t, foreign, map[string]any{"iss": "https://evil.example.com", "sub": "u", "exp": now.Add(time.Hour).Unix()}),
		"no issuer":      mustSign(t, foreign, map[string]any{"sub": "u", "exp": now.Add(time.Hour).Unix()}),
		"garbage":        "garbage",
		"three dots":     "a.b.c",
		"oversized":      "a." + strings.Repeat("A", maxTokenBytes) + ".c",
	} {
		if _, err := a.Verify(context.Background(), tok); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: %v, want ErrUnauthenticated", name, err)
		}
	}
}

// forgedServiceAccountTokens are tokens naming the cluster's issuer that no cluster key
// signed, or that the cluster signed for another audience or time.
func forgedServiceAccountTokens(t testing.TB, cluster *fakeCluster, now time.Time) map[string]string {
	real := cluster.token(t, worker, []string{saAudience}, now)
	parts := strings.Split(real, ".")
	sameKid := mustSigner(t, cluster.signer.KeyID) // another key, claiming the cluster's kid
	claims := map[string]any{"iss": saIssuer, "sub": worker, "aud": []string{saAudience}, "exp": now.Add(time.Hour).Unix()}
	return map[string]string{
		"alg none":                  b64(map[string]string{"alg": "none", "kid": cluster.signer.KeyID}) + "." + parts[1] + ".",
		"garbage signature":         parts[0] + "." + parts[1] + ".c2lnbmF0dXJl",
		"tampered claims":           parts[0] + "." + b64(map[string]any{"iss": saIssuer, "sub": "system:serviceaccount:kube-system:admin", "aud": []string{saAudience}, "exp": now.Add(time.Hour).Unix()}) + "." + parts[2],
		"another key, same kid":     mustSign(t, sameKid, claims),
		"unknown kid":               mustSign(t, mustSigner(t, "forged-kid"), claims),
		"apiserver audience":        cluster.token(t, worker, []string{saIssuer}, now),
		"no audience":               cluster.token(t, worker, nil, now, func(c map[string]any) { delete(c, "aud") }),
		"expired":                   cluster.token(t, worker, []string{saAudience}, now, func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() }),
		"no exp":                    cluster.token(t, worker, []string{saAudience}, now, func(c map[string]any) { delete(c, "exp") }),
		"not yet valid":             cluster.token(t, worker, []string{saAudience}, now, func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() }),
		"HS256 with the public key": hs256Token(t, cluster.signer, claims),
	}
}

// hs256Token signs claims with HMAC, using s's public key as the secret (the classic
// algorithm confusion), under s's kid.
func hs256Token(t testing.TB, s *Signer, claims map[string]any) string {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(s.PublicKeyPEM())},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", s.KeyID))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := josejwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestForgedServiceAccountTokensNeverReachTheApiserver(t *testing.T) {
	now := time.Now()
	cluster := newFakeCluster(t)
	a := cluster.authenticator(t, mustSigner(t, "ins_1"), time.Now)
	for name, tok := range forgedServiceAccountTokens(t, cluster, now) {
		if p, err := a.Verify(context.Background(), tok); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: accepted as %+v (%v)", name, p, err)
		}
	}
	if n := cluster.reviews.Load(); n != 0 {
		t.Fatalf("forged tokens cost %d TokenReviews, want 0", n)
	}
	if n := cluster.jwksFetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches, want 1 (unknown kids refetch at most once per interval)", n)
	}
}

func TestAcceptedTokensSurviveAFloodOfForgeries(t *testing.T) {
	now := time.Now()
	cluster := newFakeCluster(t)
	a := cluster.authenticator(t, mustSigner(t, "ins_1"), time.Now)
	real := cluster.token(t, worker, []string{saAudience}, now)
	if _, err := a.Verify(context.Background(), real); err != nil {
		t.Fatal(err)
	}
	forged := forgedServiceAccountTokens(t, cluster, now)["garbage signature"]
	for i := range 2 * DefaultLimits().AcceptedTokens / 100 {
		if _, err := a.Verify(context.Background(), forged+strings.Repeat("A", i%50)); err == nil {
			t.Fatal("forged token accepted")
		}
	}
	if _, err := a.Verify(context.Background(), real); err != nil {
		t.Fatal(err)
	}
	if n := cluster.reviews.Load(); n != 1 {
		t.Fatalf("%d TokenReviews: the real caller's accepted token was evicted by the flood", n)
	}
	if n := a.accepted.Len(); n != 1 {
		t.Fatalf("the accepted-token cache holds %d entries; rejections must not be cached", n)
	}
}

// acceptedOnAClock has a's fake cluster accept tok (edited by edit) at now on a clock the test moves.
func acceptedOnAClock(t *testing.T, edit ...func(map[string]any)) (a *Authenticator, cluster *fakeCluster, clock *clerktest.Clock, tok string) {
	t.Helper()
	now := time.Now()
	clock = clerktest.NewClockAt(now)
	cluster = newFakeCluster(t)
	a = cluster.authenticator(t, mustSigner(t, "ins_1"), clock.Now)
	tok = cluster.token(t, worker, []string{saAudience}, now, edit...)
	if _, err := a.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	return a, cluster, clock, tok
}

func TestServiceAccountRevocationBound(t *testing.T) {
	a, cluster, clock, tok := acceptedOnAClock(t)
	cluster.deleted.Store(true) // the ServiceAccount is deleted
	clock.Advance(DefaultLimits().ReuseBound - time.Second)
	if _, err := a.Verify(context.Background(), tok); err != nil {
		t.Fatalf("within the reuse bound the accepted token is reused: %v", err)
	}
	clock.Advance(2 * time.Second)
	if _, err := a.Verify(context.Background(), tok); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("past the reuse bound a deleted ServiceAccount must be refused: %v", err)
	}
	if n := cluster.reviews.Load(); n != 2 {
		t.Fatalf("%d TokenReviews, want 2", n)
	}
}

func TestServiceAccountTokenIsNeverReusedPastExp(t *testing.T) {
	a, _, clock, tok := acceptedOnAClock(t, func(c map[string]any) { c["exp"] = time.Now().Add(3 * time.Second).Unix() })
	clock.Advance(3*time.Second + DefaultLimits().Leeway + time.Second)
	if _, err := a.Verify(context.Background(), tok); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("an expired token was accepted: %v", err)
	}
}

func TestTokenReviewOutcomes(t *testing.T) {
	now := time.Now()
	for name, c := range map[string]struct {
		edit   func(*fakeCluster)
		sub    string
		unauth bool
	}{
		"not a ServiceAccount":         {sub: "alice@example.com", unauth: true},
		"review for another audience":  {edit: func(f *fakeCluster) { f.answerAudsAs = []string{"https://kubernetes.default.svc"} }, sub: worker, unauth: true},
		"apiserver down (not 401)":     {edit: func(f *fakeCluster) { f.reviewErr = errors.New("connection refused") }, sub: worker, unauth: false},
		"ServiceAccount deleted (401)": {edit: func(f *fakeCluster) { f.deleted.Store(true) }, sub: worker, unauth: true},
	} {
		cluster := newFakeCluster(t)
		if c.edit != nil {
			c.edit(cluster)
		}
		a := cluster.authenticator(t, mustSigner(t, "ins_1"), time.Now)
		_, err := a.Verify(context.Background(), cluster.token(t, c.sub, []string{saAudience}, now))
		if err == nil || errors.Is(err, ErrUnauthenticated) != c.unauth {
			t.Errorf("%s: err=%v, want an error with ErrUnauthenticated=%v", name, err, c.unauth)
		}
	}
}

func mustB64Decode(s string) []byte {
	data, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		panic(fmt.Sprint("test token: ", err))
	}
	return data
}
