package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/test/framework"
)

// memoryStore stands in for internal/credits.Store so these tests pin the HTTP contract
// alone; the integration tests run the real store against a real apiserver.
type memoryStore struct {
	mu       sync.Mutex
	balances map[string]int64
	err      error
	panics   bool
	writes   int

	ops         []account.Operation
	applyResult account.Result
	history     []account.Transaction
	grants      []account.GrantView
	grantsOf    []string // the users whose grants were read
}

func (m *memoryStore) Balance(_ context.Context, user account.UserID) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.panics {
		panic("boom")
	}
	return m.balances[string(user)], m.err
}

// Apply records the operation; a set changes the balance, other kinds answer applyResult
// and applyErr, so the tests can pin how each outcome maps to HTTP.
func (m *memoryStore) Apply(_ context.Context, user account.UserID, op account.Operation) (account.Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.panics {
		panic("boom")
	}
	m.ops = append(m.ops, op)
	if m.err != nil {
		return m.applyResult, m.err
	}
	if op.Kind != account.OpSet {
		return m.applyResult, nil
	}
	m.writes++
	m.balances[string(user)] = op.Amount
	return account.Result{Credits: op.Amount}, nil
}

// FollowPayment records the refund or dispute and answers like Apply.
func (m *memoryStore) FollowPayment(ctx context.Context, op account.Operation) (account.UserID, account.Result, error) {
	res, err := m.Apply(ctx, "user_A", op)
	return "user_A", res, err
}

func (m *memoryStore) EarlyCharge(context.Context, string) (account.ChargeState, error) {
	return account.ChargeState{}, nil
}

// Grants records the user and answers grants, or the store's error.
func (m *memoryStore) Grants(_ context.Context, user account.UserID) ([]account.GrantView, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.grantsOf = append(m.grantsOf, string(user))
	return m.grants, m.err
}

// Transactions answers history, or the store's error.
func (m *memoryStore) Transactions(context.Context, account.UserID) ([]account.Transaction, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.history, m.err
}

// serveTimes sends the same request to h times times and returns the last answer.
func serveTimes(h http.Handler, times int, method, path, body string, header []string) *httptest.ResponseRecorder {
	var rec *httptest.ResponseRecorder
	for range times {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Add(header[i], header[i+1])
		}
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
	}
	return rec
}

type fixture struct {
	store    *memoryStore
	verifier auth.Verifier
	handler  http.Handler
	token    string
}

func newFixture(t *testing.T, allowUserWrites bool) *fixture {
	t.Helper()
	signer, err := auth.NewSigner("k1")
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.NewAuthenticator(auth.Config{Clerk: &auth.ClerkConfig{JWTKeyPEM: signer.PublicKeyPEM()}, Limits: auth.DefaultLimits()})
	if err != nil {
		t.Fatal(err)
	}
	token, err := signer.SessionToken("user_A", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	store := &memoryStore{balances: map[string]int64{"user_A": 5}}
	settings := testSettings(func(s *Settings) {
		s.AllowUserWrites, s.CORSAllowedOrigins = allowUserWrites, []string{"https://app.example.com"}
	})
	h := mustHandler(t, Options{Settings: settings, Verifier: verifier, Store: store, Log: logr.Discard()})
	return &fixture{store: store, verifier: verifier, handler: h, token: token}
}

func (f *fixture) do(method, path, body string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return rec
}

func (f *fixture) authed(method, body string) *httptest.ResponseRecorder {
	return f.do(method, "/api/credits", body, "Authorization", "Bearer "+f.token)
}

func expect(t *testing.T, name string, rec *httptest.ResponseRecorder, status int, body string) {
	t.Helper()
	if rec.Code != status || rec.Body.String() != body {
		t.Errorf("%s: got %d %s, want %d %s", name, rec.Code, rec.Body.String(), status, body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", name, ct)
	}
}

func TestGetCredits(t *testing.T) {
	f := newFixture(t, false)
	expect(t, "own balance", f.authed("GET", ""), 200, `{"credits":5}`)
	f.store.balances = map[string]int64{}
	expect(t, "no record", f.authed("GET", ""), 200, `{"credits":0}`)
	f.store.balances["user_A"] = MaxCredits
	expect(t, "max", f.authed("GET", ""), 200, `{"credits":9007199254740991}`)
	f.store.err = errors.New("apiserver down: secret detail")
	expect(t, "storage failure", f.authed("GET", ""), 500, `{"error":"Error fetching credits"}`)
}

func TestUnauthorized(t *testing.T) {
	f := newFixture(t, true)
	for name, hdr := range map[string][]string{
		"no header":       nil,
		"basic":           {"Authorization", "Basic dXNlcjpwYXNz"},
		"garbage bearer":  {"Authorization", "Bearer garbage"},
		"token no scheme": {"Authorization", f.token},
		"tampered":        {"Authorization", "Bearer " + f.token[:len(f.token)-4] + "AAAA"},
	} {
		for _, method := range []string{"GET", "POST"} {
			rec := f.do(method, "/api/credits", `{"credits":1}`, hdr...)
			expect(t, name+" "+method, rec, 401, `{"error":"Unauthorized"}`)
			if strings.Contains(rec.Body.String(), f.token[:20]) {
				t.Errorf("%s: response echoes the token", name)
			}
		}
	}
	if f.store.writes != 0 {
		t.Fatalf("unauthorized requests wrote %d times", f.store.writes)
	}
}

func TestPostCredits(t *testing.T) {
	f := newFixture(t, true)
	expect(t, "set", f.authed("POST", `{"credits":10}`), 200, `{"success":true,"credits":10}`)
	if f.store.balances["user_A"] != 10 {
		t.Fatalf("balance = %d, want 10", f.store.balances["user_A"])
	}
	expect(t, "zero", f.authed("POST", `{"credits":0}`), 200, `{"success":true,"credits":0}`)

	for name, body := range framework.InvalidCreditsBodies {
		expect(t, name, f.authed("POST", body), 400, `{"error":"Invalid credits value"}`)
	}
	if f.store.writes != 2 {
		t.Fatalf("bad bodies reached the store: %d writes, want 2", f.store.writes)
	}

	expect(t, "huge body", f.authed("POST", `{"credits":1,"pad":"`+strings.Repeat("x", MaxBodyBytes)+`"}`), 413, `{"error":"Request body too large"}`)

	f.store.err = errors.New("conflict: internal detail")
	expect(t, "storage failure", f.authed("POST", `{"credits":3}`), 500, `{"error":"Error updating credits"}`)
}

func TestUserWritesAreForbiddenByDefault(t *testing.T) {
	f := newFixture(t, false)
	expect(t, "user write", f.authed("POST", `{"credits":1000000}`), 403, `{"error":"Forbidden"}`)
	if f.store.writes != 0 || f.store.balances["user_A"] != 5 {
		t.Fatal("a forbidden write changed the balance")
	}
}

func TestPanicsBecomeContractErrors(t *testing.T) {
	f := newFixture(t, true)
	f.store.panics = true
	expect(t, "POST panic", f.authed("POST", `{"credits":1}`), 500, `{"error":"Unexpected error updating credits"}`)
	expect(t, "GET panic", f.authed("GET", ""), 500, `{"error":"Error fetching credits"}`)
}

func TestRoutingErrors(t *testing.T) {
	f := newFixture(t, true)
	for _, method := range []string{"PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"} {
		rec := f.authed(method, "")
		if rec.Code != 405 || rec.Header().Get("Allow") != "GET, POST" {
			t.Errorf("%s: got %d Allow=%q", method, rec.Code, rec.Header().Get("Allow"))
		}
	}
	expect(t, "unknown path", f.do("GET", "/api/credits/extra", ""), 404, `{"error":"Not found"}`)
	expect(t, "root", f.do("GET", "/", ""), 404, `{"error":"Not found"}`)
}

func TestCORS(t *testing.T) {
	f := newFixture(t, true)
	pre := f.do("OPTIONS", "/api/credits", "", "Origin", "https://app.example.com", "Access-Control-Request-Method", "POST")
	if pre.Code != 204 || pre.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(pre.Header().Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight from an allowed origin: %d %v", pre.Code, pre.Header())
	}
	get := f.do("GET", "/api/credits", "", "Origin", "https://app.example.com", "Authorization", "Bearer "+f.token)
	if get.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("GET from an allowed origin lacks CORS headers: %v", get.Header())
	}
	evil := f.do("OPTIONS", "/api/credits", "", "Origin", "https://evil.example.com", "Access-Control-Request-Method", "POST")
	if evil.Header().Get("Access-Control-Allow-Origin") != "" || evil.Code != 405 {
		t.Fatalf("preflight from another origin: %d %v", evil.Code, evil.Header())
	}
}

// testSettings are the defaults without a rate limit (the tests' callers are not what is
// being limited, except where a case sets one), changed by edit.
func testSettings(edit func(*Settings)) Settings {
	s := DefaultSettings()
	s.UserRateLimit = 0
	if edit != nil {
		edit(&s)
	}
	return s
}

// mustHandler builds a handler or fails t.
func mustHandler(t testing.TB, opts Options) *Handler {
	t.Helper()
	h, err := NewHandler(opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
