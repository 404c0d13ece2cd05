package auth

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// countingVerifier counts the tokens it is asked about and accepts all of them.
type countingVerifier struct {
	calls atomic.Int32
	kind  Kind
}

func (c *countingVerifier) Verify(context.Context, string) (Principal, error) {
	c.calls.Add(1)
	return Principal{Kind: c.kind}, nil
}

func unsignedToken(claims map[string]any) string {
	return b64(map[string]string{"alg": "RS256", "kid": "k"}) + "." + b64(claims) + ".c2ln"
}

func TestIssuerRouterSendsEachTokenToItsVerifier(t *testing.T) {
	clerk, sa := &countingVerifier{kind: KindClerkUser}, &countingVerifier{kind: KindServiceAccount}
	r := &IssuerRouter{Clerk: clerk, ServiceAccounts: sa, ServiceAccountIssuers: []string{"https://kubernetes.default.svc"}}
	cases := []struct {
		token     string
		clerk, sa int32
		ok        bool
	}{
		{unsignedToken(map[string]any{"iss": "https://clerk.example.com"}), 1, 0, true},
		{unsignedToken(map[string]any{"iss": "https://fine-fox-12.clerk.accounts.dev"}), 1, 0, true},
		{unsignedToken(map[string]any{"iss": "https://kubernetes.default.svc"}), 0, 1, true},
		{unsignedToken(map[string]any{"iss": "https://evil.example.com"}), 0, 0, false},
		{unsignedToken(map[string]any{"sub": "no issuer"}), 0, 0, false},
		{"garbage", 0, 0, false},
		{"a.b.c", 0, 0, false},
		{"a." + strings.Repeat("A", maxTokenBytes) + ".c", 0, 0, false},
	}
	for _, c := range cases {
		clerk.calls.Store(0)
		sa.calls.Store(0)
		_, err := r.Verify(context.Background(), c.token)
		if (err == nil) != c.ok || clerk.calls.Load() != c.clerk || sa.calls.Load() != c.sa {
			t.Errorf("token %.40s…: err=%v clerk=%d sa=%d; want ok=%v clerk=%d sa=%d", c.token, err, clerk.calls.Load(), sa.calls.Load(), c.ok, c.clerk, c.sa)
		}
		if err != nil && !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("routing failure must be ErrUnauthenticated: %v", err)
		}
	}
}

// fakeTokenReviews answers TokenReviews from a table of token → username.
type fakeTokenReviews struct {
	users map[string]string
	calls atomic.Int32
	err   error
}

func (f *fakeTokenReviews) Create(_ context.Context, tr *authenticationv1.TokenReview, _ metav1.CreateOptions) (*authenticationv1.TokenReview, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	user, ok := f.users[tr.Spec.Token]
	out := tr.DeepCopy()
	out.Status.Authenticated = ok
	out.Status.User = authenticationv1.UserInfo{Username: user, UID: "uid-" + user, Groups: []string{"system:serviceaccounts"}}
	return out, nil
}

func TestServiceAccountVerifier(t *testing.T) {
	exp := time.Now().Add(time.Hour).Unix()
	worker := unsignedToken(map[string]any{"iss": "k8s", "exp": exp, "sub": "worker"})
	person := unsignedToken(map[string]any{"iss": "k8s", "exp": exp, "sub": "alice"})
	bogus := unsignedToken(map[string]any{"iss": "k8s", "exp": exp, "sub": "bogus"})
	reviews := &fakeTokenReviews{users: map[string]string{worker: "system:serviceaccount:apps:worker", person: "alice@example.com"}}
	v := NewServiceAccountVerifier(reviews, time.Minute, 100)

	for range 3 {
		p, err := v.Verify(context.Background(), worker)
		if err != nil || p.Kind != KindServiceAccount || p.Username != "system:serviceaccount:apps:worker" || p.UID == "" {
			t.Fatalf("worker: %+v %v", p, err)
		}
	}
	if n := reviews.calls.Load(); n != 1 {
		t.Fatalf("%d TokenReviews for one token, want 1 (cached)", n)
	}
	if _, err := v.Verify(context.Background(), person); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("a non-ServiceAccount user must be refused: %v", err)
	}
	if _, err := v.Verify(context.Background(), bogus); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("an unauthenticated token: %v", err)
	}

	down := NewServiceAccountVerifier(&fakeTokenReviews{err: errors.New("connection refused")}, time.Minute, 100)
	if _, err := down.Verify(context.Background(), worker); err == nil || errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("an apiserver failure must not look like bad credentials: %v", err)
	}

	expiring := unsignedToken(map[string]any{"iss": "k8s", "exp": time.Now().Add(-time.Second).Unix()})
	reviews.users[expiring] = "system:serviceaccount:apps:worker"
	reviews.calls.Store(0)
	_, _ = v.Verify(context.Background(), expiring)
	_, _ = v.Verify(context.Background(), expiring)
	if n := reviews.calls.Load(); n != 2 {
		t.Fatalf("a review was cached past the token's exp (%d reviews, want 2)", n)
	}
}

// fakeAccessReviews allows the verbs listed per user.
type fakeAccessReviews struct {
	allowed map[string]bool // user/verb
	calls   atomic.Int32
}

func (f *fakeAccessReviews) Create(_ context.Context, sar *authorizationv1.SubjectAccessReview, _ metav1.CreateOptions) (*authorizationv1.SubjectAccessReview, error) {
	f.calls.Add(1)
	out := sar.DeepCopy()
	ra := sar.Spec.ResourceAttributes
	out.Status.Allowed = ra.Group == "credits.gitread.dev" && ra.Resource == "usercredits" && ra.Namespace == "credits" &&
		f.allowed[sar.Spec.User+"/"+ra.Verb]
	return out, nil
}

func TestResourceAuthorizer(t *testing.T) {
	reviews := &fakeAccessReviews{allowed: map[string]bool{"system:serviceaccount:apps:worker/consume": true}}
	a := NewResourceAuthorizer(reviews, "credits", "credits.gitread.dev", "usercredits", time.Minute, 100)
	worker := Principal{Kind: KindServiceAccount, Username: "system:serviceaccount:apps:worker"}
	for verb, want := range map[string]bool{"consume": true, "grant": false, "get": false} {
		for range 2 {
			if got, err := a.Allowed(context.Background(), worker, verb); err != nil || got != want {
				t.Errorf("%s: %v %v, want %v", verb, got, err, want)
			}
		}
	}
	if n := reviews.calls.Load(); n != 3 {
		t.Fatalf("%d SubjectAccessReviews for 3 distinct questions asked twice, want 3", n)
	}
	if ok, _ := a.Allowed(context.Background(), Principal{Kind: KindClerkUser, UserID: "u"}, "consume"); ok {
		t.Fatal("a Clerk user is never authorized through RBAC")
	}
}

func TestIssuerRouterRemembersAcceptedTokensUntilExp(t *testing.T) {
	clerk := &countingVerifier{kind: KindClerkUser}
	r := &IssuerRouter{Clerk: clerk}
	live := unsignedToken(map[string]any{"iss": "https://clerk.example.com", "exp": time.Now().Add(time.Hour).Unix()})
	for range 3 {
		if _, err := r.Verify(context.Background(), live); err != nil {
			t.Fatal(err)
		}
	}
	if n := clerk.calls.Load(); n != 1 {
		t.Fatalf("verifier asked %d times for one live token, want 1", n)
	}
	expired := unsignedToken(map[string]any{"iss": "https://clerk.example.com", "exp": time.Now().Add(-time.Minute).Unix()})
	_, _ = r.Verify(context.Background(), expired)
	_, _ = r.Verify(context.Background(), expired)
	if n := clerk.calls.Load(); n != 3 {
		t.Fatalf("an expired token was served from the router's memory (%d calls, want 3)", n)
	}
}
