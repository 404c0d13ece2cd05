package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/test/framework"
)

var update = flag.Bool("update", false, "rewrite docs/bad-inputs.md from the cases")

// badInputDoc is generated from the cases below by `make docs`; this test fails when it is stale.
var badInputDoc = filepath.Join(framework.RepoRoot(), "docs", "bad-inputs.md")

type badCase struct {
	group, what, method, path, body string
	header                          []string
	storeErr                        error
	storeResult                     account.Result
	userWrites                      bool
	// userRateLimit, with repeat, sends the request repeat times first under that limit.
	userRateLimit float64
	repeat        int
}

func badCases(t *testing.T, signer *auth.Signer, cluster *auth.Signer) []badCase {
	sign := func(claims map[string]any) string {
		tok, err := signer.Sign(claims)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	now := time.Now()
	claims := func(edit func(map[string]any)) string {
		c := map[string]any{"iss": auth.DevIssuer, "sub": "user_A", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		edit(c)
		return sign(c)
	}
	valid := claims(func(map[string]any) {})
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	saClaims := func(aud string) map[string]any {
		return map[string]any{"iss": clusterIssuer, "sub": "system:serviceaccount:apps:worker", "aud": []string{aud}, "exp": now.Add(time.Hour).Unix()}
	}
	saToken := func(s *auth.Signer, aud string) string {
		tok, err := s.Sign(saClaims(aud))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	foreign, err := auth.NewSigner(cluster.KeyID) // another key under the cluster's kid
	if err != nil {
		t.Fatal(err)
	}

	hold := "/api/credits/reservations/rsv_0123456789abcdef/"
	var cases []badCase
	names := make([]string, 0, len(framework.InvalidCreditsBodies))
	for name := range framework.InvalidCreditsBodies {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		cases = append(cases, badCase{group: "body", what: name, method: "POST", path: "/api/credits",
			body: framework.InvalidCreditsBodies[name], header: bearer(valid), userWrites: true})
	}
	cases = append(cases,
		badCase{group: "body", what: "body over 1 MiB", method: "POST", path: "/api/credits", body: `{"credits":1,"pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, header: bearer(valid), userWrites: true},
		badCase{group: "token", what: "no Authorization header", method: "GET", path: "/api/credits"},
		badCase{group: "token", what: "Basic credentials", method: "GET", path: "/api/credits", header: []string{"Authorization", "Basic dXNlcjpwYXNz"}},
		badCase{group: "token", what: "two Authorization headers", method: "GET", path: "/api/credits", header: append(bearer(valid), "Authorization", "Bearer "+valid)},
		badCase{group: "token", what: "garbage bearer token", method: "GET", path: "/api/credits", header: bearer("garbage")},
		badCase{group: "token", what: "tampered signature", method: "GET", path: "/api/credits", header: bearer(valid[:len(valid)-4] + "AAAA")},
		badCase{group: "token", what: "expired", method: "GET", path: "/api/credits", header: bearer(claims(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }))},
		badCase{group: "token", what: "not valid yet (nbf)", method: "GET", path: "/api/credits", header: bearer(claims(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() }))},
		badCase{group: "token", what: "no exp", method: "GET", path: "/api/credits", header: bearer(claims(func(c map[string]any) { delete(c, "exp") }))},
		badCase{group: "token", what: "foreign issuer", method: "GET", path: "/api/credits", header: bearer(claims(func(c map[string]any) { c["iss"] = "https://evil.example.com" }))},
		badCase{group: "token", what: "alg none", method: "GET", path: "/api/credits", header: bearer(b64json(map[string]string{"alg": "none"}) + "." + b64json(map[string]any{"iss": auth.DevIssuer, "sub": "user_A"}) + ".")},
		badCase{group: "token", what: "ServiceAccount issuer, unsigned (never reaches TokenReview)", method: "GET", path: "/api/credits?userId=u", header: bearer(b64json(map[string]string{"alg": "none", "kid": cluster.KeyID}) + "." + b64json(saClaims(saAudience)) + ".")},
		badCase{group: "token", what: "ServiceAccount issuer, signed by another key (never reaches TokenReview)", method: "GET", path: "/api/credits?userId=u", header: bearer(saToken(foreign, saAudience))},
		badCase{group: "token", what: "ServiceAccount token for the apiserver's audience", method: "GET", path: "/api/credits?userId=u", header: bearer(saToken(cluster, clusterIssuer))},
		badCase{group: "caller", what: "Clerk user over --user-rate-limit (third request at 1/s)", method: "GET", path: "/api/credits", header: bearer(valid), userRateLimit: 1, repeat: 2},
		badCase{group: "caller", what: "Clerk user sets own balance (user writes off)", method: "POST", path: "/api/credits", body: `{"credits":1000}`, header: bearer(valid)},
		badCase{group: "caller", what: "Clerk user names another user", method: "GET", path: "/api/credits?userId=user_B", header: bearer(valid)},
		badCase{group: "caller", what: "Clerk user grants", method: "POST", path: "/api/credits/grant", body: `{"credits":5}`, header: append(bearer(valid), "Idempotency-Key", "k")},
		badCase{group: "caller", what: "service without userId", method: "GET", path: "/api/credits", header: bearer("svc-admin")},
		badCase{group: "caller", what: "service with a 256-character userId", method: "GET", path: "/api/credits?userId=" + strings.Repeat("u", 256), header: bearer("svc-admin")},
		badCase{group: "caller", what: "userId not valid UTF-8", method: "POST", path: "/api/credits/grant?userId=%FF", body: `{"credits":5}`, header: append(bearer("svc-admin"), "Idempotency-Key", "k")},
		badCase{group: "caller", what: "userId with a NUL byte", method: "POST", path: "/api/credits/grant?userId=user%00x", body: `{"credits":5}`, header: append(bearer("svc-admin"), "Idempotency-Key", "k")},
		badCase{group: "caller", what: "userId with a newline", method: "GET", path: "/api/credits?userId=user%0Ax", header: bearer("svc-admin")},
		badCase{group: "caller", what: "userId with a space", method: "GET", path: "/api/credits?userId=user%20x", header: bearer("svc-admin")},
		badCase{group: "caller", what: "userId with a zero-width space", method: "GET", path: "/api/credits?userId=user%E2%80%8Bx", header: bearer("svc-admin")},
		badCase{group: "caller", what: "two userId parameters", method: "GET", path: "/api/credits?userId=a&userId=b", header: bearer("svc-admin")},
		badCase{group: "caller", what: "malformed query escape", method: "GET", path: "/api/credits?userId=%zz", header: bearer("svc-admin")},
		badCase{group: "caller", what: "Clerk token whose sub has a control character", method: "GET", path: "/api/credits", header: bearer(claims(func(c map[string]any) { c["sub"] = "user\x01A" }))},
		badCase{group: "caller", what: "service without the RBAC verb", method: "POST", path: "/api/credits/grant?userId=u", body: `{"credits":5}`, header: append(bearer("svc-viewer"), "Idempotency-Key", "k")},
		badCase{group: "operation", what: "consume 0", method: "POST", path: "/api/credits/consume?userId=u", body: `{"credits":0}`, header: bearer("svc-admin")},
		badCase{group: "operation", what: "grant without Idempotency-Key", method: "POST", path: "/api/credits/grant?userId=u", body: `{"credits":5}`, header: bearer("svc-admin")},
		badCase{group: "operation", what: "two Idempotency-Key headers (a retry could send them in the other order)", method: "POST", path: "/api/credits/grant?userId=u", body: `{"credits":5}`, header: append(bearer("svc-admin"), "Idempotency-Key", "k1", "Idempotency-Key", "k2")},
		badCase{group: "operation", what: "Idempotency-Key with a space", method: "POST", path: "/api/credits/grant?userId=u", body: `{"credits":5}`, header: append(bearer("svc-admin"), "Idempotency-Key", "a b")},
		badCase{group: "operation", what: "Idempotency-Key reused with another body", method: "POST", path: "/api/credits/grant?userId=u", body: `{"credits":6}`, header: append(bearer("svc-admin"), "Idempotency-Key", "k"), storeErr: account.ErrIdempotencyKeyReused},
		badCase{group: "operation", what: "grant past 2^53-1", method: "POST", path: "/api/credits/grant?userId=u", body: `{"credits":9007199254740991}`, header: append(bearer("svc-admin"), "Idempotency-Key", "k2"), storeErr: account.ErrBalanceOverflow},
		badCase{group: "operation", what: "consume more than the balance", method: "POST", path: "/api/credits/consume?userId=u", body: `{"credits":5}`, header: bearer("svc-admin"), storeErr: account.ErrInsufficientCredits, storeResult: account.Result{Credits: 2}},
		badCase{group: "operation", what: "release with a member (it reads none)", method: "POST", path: hold + "release", body: `{"credits":1}`, header: bearer(valid)},
		badCase{group: "operation", what: "release with malformed JSON", method: "POST", path: hold + "release", body: `{`, header: bearer(valid)},
		badCase{group: "operation", what: "release with trailing data", method: "POST", path: hold + "release", body: `{} {}`, header: bearer(valid)},
		badCase{group: "operation", what: "capture with a misspelt member", method: "POST", path: hold + "capture", body: `{"credit":1}`, header: bearer(valid)},
	)
	grant, key := "/api/credits/grant?userId=u", append(bearer("svc-admin"), "Idempotency-Key", "k")
	lot := "/api/credits/grants/lot_0123456789abcdef/void?userId=u"
	cases = append(cases,
		badCase{group: "grant", what: "expiresAt in the past", method: "POST", path: grant, body: `{"credits":5,"expiresAt":"2020-01-01T00:00:00Z"}`, header: key, storeErr: account.ErrGrantExpired},
		badCase{group: "grant", what: "expiresAt not RFC 3339 (a date only)", method: "POST", path: grant, body: `{"credits":5,"expiresAt":"2030-06-01"}`, header: key},
		badCase{group: "grant", what: "expiresAt a Unix time", method: "POST", path: grant, body: `{"credits":5,"expiresAt":1900000000}`, header: key},
		badCase{group: "grant", what: "expiresAt past year 9999 in UTC", method: "POST", path: grant, body: `{"credits":5,"expiresAt":"9999-12-31T23:59:59-23:59"}`, header: key},
		badCase{group: "grant", what: "priority 101", method: "POST", path: grant, body: `{"credits":5,"priority":101}`, header: key},
		badCase{group: "grant", what: "priority -1", method: "POST", path: grant, body: `{"credits":5,"priority":-1}`, header: key},
		badCase{group: "grant", what: "priority 1.5", method: "POST", path: grant, body: `{"credits":5,"priority":1.5}`, header: key},
		badCase{group: "grant", what: "priority a string", method: "POST", path: grant, body: `{"credits":5,"priority":"high"}`, header: key},
		badCase{group: "grant", what: "reason over 256 characters", method: "POST", path: grant, body: `{"credits":5,"reason":"` + strings.Repeat("r", 257) + `"}`, header: key},
		badCase{group: "grant", what: "reason null", method: "POST", path: grant, body: `{"credits":5,"reason":null}`, header: key},
		badCase{group: "grant", what: "unknown member (misspelt expiresAt)", method: "POST", path: grant, body: `{"credits":5,"expiresat":"2030-06-01T00:00:00Z"}`, header: key},
		badCase{group: "grant", what: "duplicate member", method: "POST", path: grant, body: `{"credits":5,"priority":1,"priority":2}`, header: key},
		badCase{group: "grant", what: "Idempotency-Key reused with other terms", method: "POST", path: grant, body: `{"credits":5,"priority":1}`, header: key, storeErr: account.ErrIdempotencyKeyReused},
		badCase{group: "grant", what: "100 grants with credits left, none of the same terms", method: "POST", path: grant, body: `{"credits":5,"priority":1}`, header: key, storeErr: account.ErrTooManyLots},
		badCase{group: "void", what: "unknown lot", method: "POST", path: lot, header: bearer("svc-admin"), storeErr: account.ErrLotNotFound},
		badCase{group: "void", what: "malformed lot ID", method: "POST", path: "/api/credits/grants/bad$id/void?userId=u", header: bearer("svc-admin")},
		badCase{group: "void", what: "void twice, or of a lot spent or expired (nothing left)", method: "POST", path: lot, header: bearer("svc-admin"), storeErr: account.ErrLotClosed},
		badCase{group: "void", what: "body other than {}", method: "POST", path: lot, body: `{"credits":1}`, header: bearer("svc-admin")},
		badCase{group: "void", what: "Clerk user voids", method: "POST", path: "/api/credits/grants/lot_0123456789abcdef/void", header: bearer(valid)},
		badCase{group: "void", what: "service without the grant verb", method: "POST", path: lot, header: bearer("svc-viewer")},
		badCase{group: "route", what: "malformed reservation ID", method: "POST", path: "/api/credits/reservations/bad$id/capture", header: bearer(valid)},
		badCase{group: "route", what: "65-character reservation ID", method: "POST", path: "/api/credits/reservations/" + strings.Repeat("a", 65) + "/release", header: bearer(valid)},
		badCase{group: "route", what: "malformed reservation ID, no token", method: "POST", path: "/api/credits/reservations/bad$id/capture"},
		badCase{group: "route", what: "PUT", method: "PUT", path: "/api/credits", header: bearer(valid)},
		badCase{group: "route", what: "GET on consume", method: "GET", path: "/api/credits/consume", header: bearer(valid)},
		badCase{group: "route", what: "unknown path", method: "GET", path: "/api/other", header: bearer(valid)},
	)
	return cases
}

func TestBadInputTable(t *testing.T) {
	signer, err := auth.NewSigner("k1")
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := auth.NewSigner("cluster-key")
	if err != nil {
		t.Fatal(err)
	}
	// Clerk and the cluster's ServiceAccounts, whose TokenReview must never be reached here.
	clerk, err := auth.NewAuthenticator(auth.Config{
		Clerk: &auth.ClerkConfig{JWTKeyPEM: signer.PublicKeyPEM()},
		ServiceAccounts: &auth.ServiceAccountConfig{ServiceAccountSettings: auth.ServiceAccountSettings{Issuers: []string{clusterIssuer}, Audiences: []string{saAudience}},
			JWKS: func(context.Context) ([]byte, error) { return json.Marshal(cluster.JWKS()) }, Reviews: failingReviews{t}},
		Limits: auth.DefaultLimits(),
	})
	if err != nil {
		t.Fatal(err)
	}
	authz := verbAuthorizer{verbs: map[string][]string{"admin": {"get", "update", "consume", "grant"}, "viewer": {"get"}}}
	var b strings.Builder
	b.WriteString("# Bad inputs and their answers\n\nGenerated by `make docs` from the cases in `internal/httpapi/badinput_doc_test.go`, which\n" +
		"runs each through the real handler and fails when this file is stale. Nothing is stored for any of them.\n\n")
	b.WriteString("| group | input | request | status | body |\n| --- | --- | --- | --- | --- |\n")
	for _, c := range badCases(t, signer, cluster) {
		store := &memoryStore{balances: map[string]int64{"user_A": 5}, err: c.storeErr, applyResult: c.storeResult}
		settings := testSettings(func(s *Settings) { s.AllowUserWrites, s.UserRateLimit = c.userWrites, c.userRateLimit })
		h := mustHandler(t, Options{Settings: settings, Verifier: serviceVerifier{clerk}, Authorizer: authz, Store: store, Log: logr.Discard()})
		rec := serveTimes(h, c.repeat+1, c.method, c.path, c.body, c.header)
		if rec.Code < 400 || store.writes != 0 {
			t.Errorf("%s/%s: answered %d with %d writes; a bad input must be refused and change nothing", c.group, c.what, rec.Code, store.writes)
		}
		if c.storeErr == nil && len(store.ops) != 0 {
			t.Errorf("%s/%s: reached the store (%+v); only a refusal of the store's may", c.group, c.what, store.ops)
		}
		input := c.body
		if len(input) > 48 {
			input = input[:45] + "…"
		}
		fmt.Fprintf(&b, "| %s | %s | `%s %s` %s | %d | `%s` |\n", c.group, c.what, c.method, shorten(c.path), cell(input), rec.Code, rec.Body.String())
	}
	got := b.String()
	if *update {
		if err := os.WriteFile(badInputDoc, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(badInputDoc)
	if err != nil || string(want) != got {
		t.Fatalf("%s is stale: run `make docs` and commit it", badInputDoc)
	}
}

const (
	clusterIssuer = "https://kubernetes.default.svc.cluster.local"
	saAudience    = "credits.gitread.dev"
)

// failingReviews fails the test if a TokenReview is ever asked for.
type failingReviews struct{ t *testing.T }

func (f failingReviews) Create(context.Context, *authenticationv1.TokenReview, metav1.CreateOptions) (*authenticationv1.TokenReview, error) {
	f.t.Error("a bad token reached TokenReview")
	return nil, errors.New("no TokenReview here")
}

func shorten(path string) string {
	if len(path) > 60 {
		return path[:57] + "…"
	}
	return path
}

// cell renders a body for a Markdown table cell: visible, escaped, never breaking the row.
func cell(body string) string {
	if body == "" {
		return ""
	}
	if !utf8.ValidString(body) || strings.ContainsFunc(body, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) {
		q := strconv.Quote(body)
		body = q[1 : len(q)-1]
	}
	return "`" + strings.ReplaceAll(body, "|", `\|`) + "`"
}

func b64json(v any) string {
	return strings.TrimRight(strings.NewReplacer("+", "-", "/", "_").Replace(base64JSON(v)), "=")
}

func base64JSON(v any) string {
	data, _ := json.Marshal(v)
	return base64.StdEncoding.EncodeToString(data)
}
