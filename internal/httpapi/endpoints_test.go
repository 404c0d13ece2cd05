package httpapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-logr/logr"

	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/auth"
)

// serviceVerifier accepts "svc-<name>" as the ServiceAccount <name> and defers the rest.
type serviceVerifier struct{ next auth.Verifier }

func (s serviceVerifier) Verify(ctx context.Context, token string) (auth.Principal, error) {
	if name, ok := strings.CutPrefix(token, "svc-"); ok {
		return auth.Principal{Kind: auth.KindServiceAccount, Username: "system:serviceaccount:apps:" + name}, nil
	}
	return s.next.Verify(ctx, token)
}

// verbAuthorizer allows ServiceAccount <name> the verbs listed for it.
type verbAuthorizer struct {
	verbs map[string][]string
	err   error
}

func (a verbAuthorizer) Allowed(_ context.Context, p auth.Principal, verb string) (bool, error) {
	name := strings.TrimPrefix(p.Username, "system:serviceaccount:apps:")
	for _, v := range a.verbs[name] {
		if v == verb {
			return true, a.err
		}
	}
	return false, a.err
}

func newServiceFixture(t *testing.T, authz verbAuthorizer) *fixture {
	f := newFixture(t, false)
	f.handler = mustHandler(t, Options{Settings: testSettings(nil), Verifier: serviceVerifier{f.verifier}, Authorizer: authz, Store: f.store, Log: logr.Discard()})
	return f
}

func (f *fixture) service(name, method, path, body string, header ...string) (int, string) {
	rec := f.do(method, path, body, append([]string{"Authorization", "Bearer svc-" + name}, header...)...)
	return rec.Code, rec.Body.String()
}

func TestServiceCallersNeedUserIDAndRBAC(t *testing.T) {
	f := newServiceFixture(t, verbAuthorizer{verbs: map[string][]string{
		"viewer":   {"get"},
		"consumer": {"get", "consume"},
		"granter":  {"get", "grant"},
		"admin":    {"get", "update", "consume", "grant"},
	}})
	f.store.balances["user_B"] = 7
	cases := []struct {
		name, caller, method, path, body, key string
		status                                int
		want                                  string
	}{
		{"viewer reads", "viewer", "GET", "/api/credits?userId=user_B", "", "", 200, `{"credits":7}`},
		{"no userId", "viewer", "GET", "/api/credits", "", "", 400, `{"error":"Missing userId"}`},
		{"userId too long", "viewer", "GET", "/api/credits?userId=" + strings.Repeat("u", 256), "", "", 400, `{"error":"Invalid userId"}`},
		{"viewer cannot set", "viewer", "POST", "/api/credits?userId=user_B", `{"credits":9}`, "", 403, `{"error":"Forbidden"}`},
		{"viewer cannot consume", "viewer", "POST", "/api/credits/consume?userId=user_B", "", "", 403, `{"error":"Forbidden"}`},
		{"stranger cannot read", "stranger", "GET", "/api/credits?userId=user_B", "", "", 403, `{"error":"Forbidden"}`},
		{"consumer consumes", "consumer", "POST", "/api/credits/consume?userId=user_B", "", "", 200, `{"success":true,"credits":0}`},
		{"consumer cannot grant", "consumer", "POST", "/api/credits/grant?userId=user_B", `{"credits":5}`, "k1", 403, `{"error":"Forbidden"}`},
		{"granter grants", "granter", "POST", "/api/credits/grant?userId=user_B", `{"credits":5}`, "k1", 200, `{"success":true,"credits":0}`},
		{"admin sets", "admin", "POST", "/api/credits?userId=user_B", `{"credits":9}`, "", 200, `{"success":true,"credits":9}`},
	}
	for _, c := range cases {
		var hdr []string
		if c.key != "" {
			hdr = []string{"Idempotency-Key", c.key}
		}
		status, body := f.service(c.caller, c.method, c.path, c.body, hdr...)
		if status != c.status || body != c.want {
			t.Errorf("%s: got %d %s, want %d %s", c.name, status, body, c.status, c.want)
		}
	}
	var kinds []string
	for _, op := range f.store.ops {
		kinds = append(kinds, fmt.Sprintf("%s/%d/%s", op.Kind, op.Amount, op.IdempotencyKey))
	}
	if got := strings.Join(kinds, " "); got != "consume/1/ grant/5/k1 set/9/" {
		t.Fatalf("operations reaching the store: %s", got)
	}
}

func TestAuthorizationOutageIsA500(t *testing.T) {
	f := newServiceFixture(t, verbAuthorizer{err: errors.New("apiserver down")})
	if status, body := f.service("admin", "GET", "/api/credits?userId=u", ""); status != 500 || body != `{"error":"Error fetching credits"}` {
		t.Fatalf("GET: %d %s", status, body)
	}
	if status, body := f.service("admin", "POST", "/api/credits/consume?userId=u", ""); status != 500 || body != `{"error":"Error updating credits"}` {
		t.Fatalf("consume: %d %s", status, body)
	}
}

func TestClerkUsersActOnlyOnThemselves(t *testing.T) {
	f := newFixture(t, false)
	expect(t, "own consume", f.do("POST", "/api/credits/consume", "", "Authorization", "Bearer "+f.token), 200, `{"success":true,"credits":0}`)
	expect(t, "own userId", f.do("GET", "/api/credits?userId=user_A", "", "Authorization", "Bearer "+f.token), 200, `{"credits":5}`)
	expect(t, "other user", f.do("GET", "/api/credits?userId=user_B", "", "Authorization", "Bearer "+f.token), 403, `{"error":"Forbidden"}`)
	expect(t, "consume other", f.do("POST", "/api/credits/consume?userId=user_B", "", "Authorization", "Bearer "+f.token), 403, `{"error":"Forbidden"}`)
	expect(t, "grant", f.do("POST", "/api/credits/grant", `{"credits":5}`, "Authorization", "Bearer "+f.token, "Idempotency-Key", "k"), 403, `{"error":"Forbidden"}`)
	if len(f.store.ops) != 1 || f.store.ops[0].Kind != account.OpConsume {
		t.Fatalf("operations reaching the store: %+v", f.store.ops)
	}
}

func TestConsumeAndGrantBodies(t *testing.T) {
	f := newServiceFixture(t, verbAuthorizer{verbs: map[string][]string{"admin": {"consume", "grant"}}})
	consume := func(body string, hdr ...string) (int, string) {
		return f.service("admin", "POST", "/api/credits/consume?userId=u", body, hdr...)
	}
	grant := func(body string, hdr ...string) (int, string) {
		return f.service("admin", "POST", "/api/credits/grant?userId=u", body, hdr...)
	}
	for name, c := range map[string]reply{
		"consume zero":       status(consume(`{"credits":0}`)),
		"consume negative":   status(consume(`{"credits":-1}`)),
		"consume fraction":   status(consume(`{"credits":1.5}`)),
		"consume garbage":    status(consume(`nope`)),
		"grant no key":       status(grant(`{"credits":5}`)),
		"grant empty body":   status(grant(``, "Idempotency-Key", "k")),
		"grant zero":         status(grant(`{"credits":0}`, "Idempotency-Key", "k")),
		"bad key (space)":    status(grant(`{"credits":1}`, "Idempotency-Key", "a b")),
		"bad key (too long)": status(grant(`{"credits":1}`, "Idempotency-Key", strings.Repeat("k", 256))),
	} {
		want := map[string]string{
			"grant no key": `{"error":"Missing Idempotency-Key"}`, "bad key (space)": `{"error":"Invalid Idempotency-Key"}`,
			"bad key (too long)": `{"error":"Invalid Idempotency-Key"}`,
		}[name]
		if want == "" {
			want = `{"error":"Invalid credits value"}`
		}
		if c.status != 400 || c.body != want {
			t.Errorf("%s: got %d %s, want 400 %s", name, c.status, c.body, want)
		}
	}
	if len(f.store.ops) != 0 {
		t.Fatalf("bad requests reached the store: %+v", f.store.ops)
	}
	if s, b := consume("  "); s != 200 || f.store.ops[0].Amount != 1 {
		t.Fatalf("empty consume body: %d %s %+v", s, b, f.store.ops)
	}
	if s, _ := consume(`{"credits":3}`, "Idempotency-Key", "job-1"); s != 200 || f.store.ops[1] != (account.Operation{Kind: account.OpConsume, Amount: 3, IdempotencyKey: "job-1"}) {
		t.Fatalf("consume with key: %+v", f.store.ops)
	}
}

// reply is a response's status and body, for tables of calls.
type reply struct {
	status int
	body   string
}

func status(code int, body string) reply { return reply{code, body} }

func TestStoreOutcomesMapToResponses(t *testing.T) {
	f := newServiceFixture(t, verbAuthorizer{verbs: map[string][]string{"admin": {"consume", "grant"}}})
	cases := []struct {
		err    error
		result account.Result
		status int
		body   string
	}{
		{account.ErrInsufficientCredits, account.Result{Credits: 2}, 402, `{"error":"Insufficient credits","credits":2}`},
		{account.ErrIdempotencyKeyReused, account.Result{}, 409, `{"error":"Idempotency-Key reused with a different request"}`},
		{account.ErrBalanceOverflow, account.Result{}, 400, `{"error":"Invalid credits value"}`},
		{fmt.Errorf("wrapped: %w", errors.New("etcd down")), account.Result{}, 500, `{"error":"Error updating credits"}`},
	}
	for _, c := range cases {
		f.store.err, f.store.applyResult = c.err, c.result
		status, body := f.service("admin", "POST", "/api/credits/consume?userId=u", `{"credits":3}`)
		if status != c.status || body != c.body {
			t.Errorf("%v: got %d %s, want %d %s", c.err, status, body, c.status, c.body)
		}
	}
	f.store.err, f.store.applyResult = nil, account.Result{Credits: 4, Replayed: true}
	rec := f.do("POST", "/api/credits/grant?userId=u", `{"credits":3}`, "Authorization", "Bearer svc-admin", "Idempotency-Key", "k")
	if rec.Code != 200 || rec.Body.String() != `{"success":true,"credits":4}` || rec.Header().Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s %v", rec.Code, rec.Body.String(), rec.Header())
	}
}
