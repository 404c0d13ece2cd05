package httpapi

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gitread/usercredits-operator/internal/account"
)

// grantNow is the clock of the grant tests: expiresAt is judged against it.
var grantNow = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// newGrantFixture is a service fixture whose handler's clock is grantNow. Its callers:
// granter (get, grant), consumer (get, consume), viewer (get).
func newGrantFixture(t *testing.T) *fixture {
	t.Helper()
	f := newServiceFixture(t, verbAuthorizer{verbs: map[string][]string{
		"granter": {"get", "grant"}, "consumer": {"get", "consume"}, "viewer": {"get"},
	}})
	f.handler.(*Handler).now = func() time.Time { return grantNow }
	return f
}

func ptr32(n int32) *int32 { return &n }

// TestGrantTermsReachTheStore: a grant's optional terms are read into the operation the
// store applies, and the answer is unchanged: {"success":true,"credits":N}.
func TestGrantTermsReachTheStore(t *testing.T) {
	f := newGrantFixture(t)
	f.store.applyResult = account.Result{Credits: 12}
	cases := []struct {
		name, body string
		terms      account.LotTerms
	}{
		{"credits only", `{"credits":5}`, account.LotTerms{}},
		{"all terms", `{"credits":5,"expiresAt":"2030-01-02T03:04:05Z","priority":0,"reason":"welcome"}`,
			account.LotTerms{ExpiresAt: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Priority: ptr32(0), Reason: "welcome"}},
		{"an offset", `{"credits":5,"expiresAt":"2030-01-02T05:04:05+02:00"}`, account.LotTerms{ExpiresAt: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}},
		{"one second ahead", `{"credits":5,"expiresAt":"2030-01-01T00:00:01Z"}`, account.LotTerms{ExpiresAt: grantNow.Add(time.Second)}},
		// Not in the future: the store refuses it (ErrGrantExpired) unless its key shows it
		// applied before, when it is a replay (TestAccountGrantReplayedAfterItsExpiry).
		{"expiresAt now", `{"credits":5,"expiresAt":"2030-01-01T00:00:00Z"}`, account.LotTerms{ExpiresAt: grantNow}},
		{"expiresAt past", `{"credits":5,"expiresAt":"2020-01-01T00:00:00Z"}`, account.LotTerms{ExpiresAt: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"priority 100", `{"credits":5,"priority":100}`, account.LotTerms{Priority: ptr32(100)}},
		{"priority 10.0 (an integral number, as for credits)", `{"credits":5,"priority":10.0}`, account.LotTerms{Priority: ptr32(10)}},
		{"empty reason", `{"credits":5,"reason":""}`, account.LotTerms{}},
		{"256-character reason", `{"credits":5,"reason":"` + strings.Repeat("é", 256) + `"}`, account.LotTerms{Reason: strings.Repeat("é", 256)}},
		{"members in any order", `{"reason":"r","priority":7,"credits":5}`, account.LotTerms{Priority: ptr32(7), Reason: "r"}},
		{"whitespace around values", "{ \"credits\" : 5 ,\n \"reason\" :\t \"r\" , \"expiresAt\": \"2030-01-02T03:04:05Z\" }",
			account.LotTerms{ExpiresAt: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Reason: "r"}},
	}
	for _, c := range cases {
		f.store.ops = nil
		status, body := f.service("granter", "POST", "/api/credits/grant?userId=user_B", c.body, "Idempotency-Key", "k1")
		if status != 200 || body != `{"success":true,"credits":12}` {
			t.Errorf("%s: %d %s, want 200 {\"success\":true,\"credits\":12}", c.name, status, body)
			continue
		}
		if len(f.store.ops) != 1 {
			t.Fatalf("%s: %d operations reached the store", c.name, len(f.store.ops))
		}
		op := f.store.ops[0]
		if op.Kind != account.OpGrant || op.Amount != 5 || op.IdempotencyKey != "k1" || !sameTerms(op.Terms, c.terms) {
			t.Errorf("%s: the store got %+v (terms %+v), want a grant of 5 with terms %+v", c.name, op, op.Terms, c.terms)
		}
	}
}

// sameTerms compares terms by instant and priority value.
func sameTerms(a, b account.LotTerms) bool {
	samePriority := (a.Priority == nil) == (b.Priority == nil) && (a.Priority == nil || *a.Priority == *b.Priority)
	return a.ExpiresAt.Equal(b.ExpiresAt) && samePriority && a.ID == b.ID && a.Source == b.Source &&
		a.Reference == b.Reference && a.Reason == b.Reason
}

// TestGrantRefusals: every grant body the API cannot grant exactly as asked is refused with
// the body naming the member at fault, and never reaches the store.
func TestGrantRefusals(t *testing.T) {
	f := newGrantFixture(t)
	invalid := map[string]string{
		"credits": `{"error":"Invalid credits value"}`, "expiresAt": `{"error":"Invalid expiresAt"}`,
		"priority": `{"error":"Invalid priority"}`, "reason": `{"error":"Invalid reason"}`,
	}
	cases := []struct{ name, body, member string }{
		{"expiresAt a date only", `{"credits":5,"expiresAt":"2030-06-01"}`, "expiresAt"},
		{"expiresAt with a space for T", `{"credits":5,"expiresAt":"2030-06-01 00:00:00Z"}`, "expiresAt"},
		{"expiresAt without a zone", `{"credits":5,"expiresAt":"2030-06-01T00:00:00"}`, "expiresAt"},
		{"expiresAt in words", `{"credits":5,"expiresAt":"tomorrow"}`, "expiresAt"},
		{"expiresAt a Unix time", `{"credits":5,"expiresAt":1900000000}`, "expiresAt"},
		{"expiresAt in year 10000 in UTC", `{"credits":5,"expiresAt":"9999-12-31T23:59:59-23:59"}`, "expiresAt"},
		{"expiresAt rounding up into year 10000", `{"credits":5,"expiresAt":"9999-12-31T23:59:59.5Z"}`, "expiresAt"},
		{"expiresAt empty", `{"credits":5,"expiresAt":""}`, "expiresAt"},
		{"expiresAt null", `{"credits":5,"expiresAt":null}`, "expiresAt"},
		{"expiresAt twice", `{"credits":5,"expiresAt":"2031-01-01T00:00:00Z","expiresAt":"2032-01-01T00:00:00Z"}`, "expiresAt"},
		{"priority 101", `{"credits":5,"priority":101}`, "priority"},
		{"priority -1", `{"credits":5,"priority":-1}`, "priority"},
		{"priority 1.5", `{"credits":5,"priority":1.5}`, "priority"},
		{`priority "high"`, `{"credits":5,"priority":"high"}`, "priority"},
		{`priority "50"`, `{"credits":5,"priority":"50"}`, "priority"},
		{"priority null", `{"credits":5,"priority":null}`, "priority"},
		{"priority past int32", `{"credits":5,"priority":4294967346}`, "priority"},
		{"priority twice", `{"credits":5,"priority":1,"priority":2}`, "priority"},
		{"reason of 257 characters", `{"credits":5,"reason":"` + strings.Repeat("r", 257) + `"}`, "reason"},
		{"reason a number", `{"credits":5,"reason":5}`, "reason"},
		{"reason null", `{"credits":5,"reason":null}`, "reason"},
		{"reason an object", `{"credits":5,"reason":{"text":"x"}}`, "reason"},
		{"reason twice", `{"credits":5,"reason":"a","reason":"b"}`, "reason"},
		{"reason with a newline", `{"credits":5,"reason":"a\nb"}`, "reason"},
		{"reason with a NUL", `{"credits":5,"reason":"a\u0000b"}`, "reason"},
		{"reason with an escape sequence", `{"credits":5,"reason":"\u001b[31mred"}`, "reason"},
		{"unknown member", `{"credits":5,"note":"x"}`, "credits"},
		{"misspelt member", `{"credits":5,"expiresat":"2031-01-01T00:00:00Z"}`, "credits"},
		{"credits twice", `{"credits":5,"credits":6}`, "credits"},
		{"terms without credits", `{"priority":1,"reason":"x"}`, "credits"},
		{"credits 0", `{"credits":0,"priority":1}`, "credits"},
		{"empty body", ``, "credits"},
		{"trailing data", `{"credits":5,"priority":1} {}`, "credits"},
	}
	for _, c := range cases {
		status, body := f.service("granter", "POST", "/api/credits/grant?userId=user_B", c.body, "Idempotency-Key", "k1")
		if status != 400 || body != invalid[c.member] {
			t.Errorf("%s: %d %s, want 400 %s", c.name, status, body, invalid[c.member])
		}
	}
	if len(f.store.ops) != 0 {
		t.Fatalf("refused grants reached the store: %+v", f.store.ops)
	}
}

// TestGrantRefusalsByTheStore: what the store refuses a grant for, and the answers.
func TestGrantRefusalsByTheStore(t *testing.T) {
	f := newGrantFixture(t)
	for _, c := range []struct {
		err    error
		status int
		body   string
	}{
		{account.ErrTooManyLots, 409, `{"error":"Too many open grants"}`},
		{account.ErrGrantExpired, 400, `{"error":"Invalid expiresAt"}`},
		{account.ErrIdempotencyKeyReused, 409, `{"error":"Idempotency-Key reused with a different request"}`},
		{account.ErrBalanceOverflow, 400, `{"error":"Invalid credits value"}`},
		{errors.New("etcd down"), 500, `{"error":"Error updating credits"}`},
	} {
		f.store.err = c.err
		status, body := f.service("granter", "POST", "/api/credits/grant?userId=user_B", `{"credits":5,"priority":1}`, "Idempotency-Key", "k1")
		if status != c.status || body != c.body {
			t.Errorf("%v: %d %s, want %d %s", c.err, status, body, c.status, c.body)
		}
	}
}

// TestGrantsList: GET /api/credits/grants answers the user's lots as the store lists them
// (in spending order), a lot that never expires with "expiresAt":null, a reference only
// when there is one, and the balance lot's credits as what it holds, held credits included.
func TestGrantsList(t *testing.T) {
	f := newGrantFixture(t)
	granted := time.Date(2029, 12, 1, 8, 0, 0, 0, time.UTC)
	f.store.grants = []account.GrantView{
		{Lot: account.Lot{ID: "lot_0123456789abcdef", Credits: 20, Remaining: 5, ExpiresAt: time.Date(2030, 2, 1, 0, 0, 0, 0, time.UTC),
			Priority: 10, Source: account.SourceAPI, Reason: "welcome", GrantedAt: granted}, Held: 3},
		{Lot: account.Lot{ID: "lot_fedcba9876543210", Credits: 8, Remaining: 8, Priority: 50, Source: account.SourceStripe,
			Reference: "cs_test_a1", GrantedAt: granted.Add(time.Hour)}},
		{Lot: account.Lot{ID: account.BalanceLotID, Credits: 1, Remaining: 4, Priority: 50, Source: account.SourceSet,
			GrantedAt: time.Date(2029, 12, 1, 9, 30, 0, 0, time.FixedZone("CET", 3600))}, Held: 2},
	}
	want := `{"grants":[` +
		`{"id":"lot_0123456789abcdef","credits":20,"remaining":5,"expiresAt":"2030-02-01T00:00:00Z","priority":10,"source":"api","reason":"welcome","grantedAt":"2029-12-01T08:00:00Z"},` +
		`{"id":"lot_fedcba9876543210","credits":8,"remaining":8,"expiresAt":null,"priority":50,"source":"stripe","reference":"cs_test_a1","reason":"","grantedAt":"2029-12-01T09:00:00Z"},` +
		`{"id":"balance","credits":6,"remaining":4,"expiresAt":null,"priority":50,"source":"set","reason":"","grantedAt":"2029-12-01T08:30:00Z"}]}`
	clerk := []string{"Authorization", "Bearer " + f.token}
	expect(t, "own grants", f.do("GET", "/api/credits/grants", "", clerk...), 200, want)
	expect(t, "own grants, named", f.do("GET", "/api/credits/grants?userId=user_A", "", clerk...), 200, want)
	expect(t, "another user's", f.do("GET", "/api/credits/grants?userId=user_B", "", clerk...), 403, `{"error":"Forbidden"}`)
	if status, body := f.service("viewer", "GET", "/api/credits/grants?userId=user_B", ""); status != 200 || body != want {
		t.Errorf("a service with the get verb: %d %s", status, body)
	}
	if status, body := f.service("stranger", "GET", "/api/credits/grants?userId=user_B", ""); status != 403 || body != `{"error":"Forbidden"}` {
		t.Errorf("a service without the get verb: %d %s", status, body)
	}
	if status, body := f.service("viewer", "GET", "/api/credits/grants", ""); status != 400 || body != `{"error":"Missing userId"}` {
		t.Errorf("a service naming no user: %d %s", status, body)
	}
	if got := f.store.grantsOf; strings.Join(got, " ") != "user_A user_A user_B" {
		t.Errorf("the store was asked for the grants of %v, want user_A user_A user_B", got)
	}
	expect(t, "no token", f.do("GET", "/api/credits/grants", ""), 401, `{"error":"Unauthorized"}`)
	if rec := f.do("POST", "/api/credits/grants", `{}`, clerk...); rec.Code != 405 || rec.Header().Get("Allow") != "GET" {
		t.Errorf("POST /api/credits/grants: %d Allow=%q, want 405 Allow=GET", rec.Code, rec.Header().Get("Allow"))
	}

	f.store.grants = nil
	expect(t, "no lots", f.do("GET", "/api/credits/grants", "", clerk...), 200, `{"grants":[]}`)
	f.store.err = errors.New("etcd down: secret detail")
	expect(t, "storage failure", f.do("GET", "/api/credits/grants", "", clerk...), 500, `{"error":"Error fetching credits"}`)
	if len(f.store.ops) != 0 {
		t.Fatalf("reading grants changed something: %+v", f.store.ops)
	}
}

// TestVoid: POST /api/credits/grants/<id>/void voids the lot named by the path, for a
// ServiceAccount with the grant verb only, with an empty body or {}.
func TestVoid(t *testing.T) {
	f := newGrantFixture(t)
	f.store.applyResult = account.Result{Credits: 7}
	path := grantsPrefix + "lot_0123456789abcdef/void?userId=user_B"
	for _, body := range []string{"", "{}", " { }\n"} {
		if status, got := f.service("granter", "POST", path, body, "Idempotency-Key", "void-1"); status != 200 || got != `{"success":true,"credits":7}` {
			t.Errorf("void with body %q: %d %s", body, status, got)
		}
	}
	want := account.Operation{Kind: account.OpVoid, IdempotencyKey: "void-1", Terms: account.LotTerms{ID: "lot_0123456789abcdef"}}
	if len(f.store.ops) != 3 || f.store.ops[0] != want || f.store.ops[2] != want {
		t.Fatalf("voids sent %+v, want 3 of %+v", f.store.ops, want)
	}
	f.store.ops = nil
	if status, got := f.service("granter", "POST", grantsPrefix+"balance/void?userId=user_B", ""); status != 200 || got != `{"success":true,"credits":7}` ||
		len(f.store.ops) != 1 || f.store.ops[0].Terms.ID != account.BalanceLotID || f.store.ops[0].IdempotencyKey != "" {
		t.Fatalf("void of the balance lot without a key: %d %s %+v", status, got, f.store.ops)
	}
	f.store.ops = nil

	f.store.applyResult = account.Result{Credits: 7, Replayed: true}
	rec := f.do("POST", path, "", "Authorization", "Bearer svc-granter", "Idempotency-Key", "void-1")
	if rec.Code != 200 || rec.Body.String() != `{"success":true,"credits":7}` || rec.Header().Get("Idempotent-Replayed") != "true" {
		t.Fatalf("a replayed void: %d %s %v", rec.Code, rec.Body, rec.Header())
	}
	f.store.ops = nil

	refused := []struct {
		name, caller, path, body string
		header                   []string
		status                   int
		want                     string
	}{
		{"a Clerk user, own lot", "", grantsPrefix + "lot_1/void", "", nil, 403, `{"error":"Forbidden"}`},
		{"a service with the consume verb", "consumer", path, "", nil, 403, `{"error":"Forbidden"}`},
		{"a service with the get verb", "viewer", path, "", nil, 403, `{"error":"Forbidden"}`},
		{"no userId", "granter", grantsPrefix + "lot_1/void", "", nil, 400, `{"error":"Missing userId"}`},
		{"a body with a member", "granter", path, `{"credits":1}`, nil, 400, `{"error":"Invalid credits value"}`},
		{"a body with a reason", "granter", path, `{"reason":"refund"}`, nil, 400, `{"error":"Invalid credits value"}`},
		{"malformed JSON", "granter", path, `{`, nil, 400, `{"error":"Invalid credits value"}`},
		{"trailing data", "granter", path, `{} {}`, nil, 400, `{"error":"Invalid credits value"}`},
		{"an array", "granter", path, `[]`, nil, 400, `{"error":"Invalid credits value"}`},
		{"null", "granter", path, `null`, nil, 400, `{"error":"Invalid credits value"}`},
		{"an Idempotency-Key with a space", "granter", path, "", []string{"Idempotency-Key", "a b"}, 400, `{"error":"Invalid Idempotency-Key"}`},
		{"a body over 1 MiB", "granter", path, `{"pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, nil, 413, `{"error":"Request body too large"}`},
	}
	for _, c := range refused {
		var rec reply
		if c.caller == "" {
			r := f.do("POST", c.path, c.body, append([]string{"Authorization", "Bearer " + f.token}, c.header...)...)
			rec = reply{r.Code, r.Body.String()}
		} else {
			rec = status(f.service(c.caller, "POST", c.path, c.body, c.header...))
		}
		if rec.status != c.status || rec.body != c.want {
			t.Errorf("%s: %d %s, want %d %s", c.name, rec.status, rec.body, c.status, c.want)
		}
	}
	if len(f.store.ops) != 0 {
		t.Fatalf("refused voids reached the store: %+v", f.store.ops)
	}

	for _, c := range []struct {
		err    error
		status int
		body   string
	}{
		{account.ErrLotNotFound, 404, `{"error":"Grant not found"}`},
		{account.ErrLotClosed, 409, `{"error":"Grant has nothing left"}`},
		{account.ErrIdempotencyKeyReused, 409, `{"error":"Idempotency-Key reused with a different request"}`},
		{account.ErrUntrusted, 500, `{"error":"Error updating credits"}`},
		{errors.New("etcd down"), 500, `{"error":"Error updating credits"}`},
	} {
		f.store.err = c.err
		if status, body := f.service("granter", "POST", path, ""); status != c.status || body != c.body {
			t.Errorf("%v: %d %s, want %d %s", c.err, status, body, c.status, c.body)
		}
	}
}

// TestMalformedLotIDsAreUnknownGrants: a lot ID the store can never have made answers as an
// unknown one does, 404 {"error":"Grant not found"}, without reaching the store; but only
// after the caller is admitted (401 without a token, 403 without the verb). Paths that are
// no lot's route are unknown paths.
func TestMalformedLotIDsAreUnknownGrants(t *testing.T) {
	f := newGrantFixture(t)
	for _, id := range []string{"bad$id", strings.Repeat("a", 65), "lot_%E2%80%8B", "", "lot.1", "lot%20one"} {
		path := grantsPrefix + id + "/void"
		expect(t, path+" without a token", f.do("POST", path, ""), 401, `{"error":"Unauthorized"}`)
		if status, body := f.service("viewer", "POST", path+"?userId=user_B", ""); status != 403 || body != `{"error":"Forbidden"}` {
			t.Errorf("%s without the grant verb: %d %s, want 403", path, status, body)
		}
		if status, body := f.service("granter", "POST", path+"?userId=user_B", ""); status != 404 || body != `{"error":"Grant not found"}` {
			t.Errorf("%s: %d %s, want 404 Grant not found", path, status, body)
		}
		if rec := f.do("GET", path, "", "Authorization", "Bearer svc-granter"); rec.Code != 405 || rec.Header().Get("Allow") != "POST" {
			t.Errorf("GET %s: %d Allow=%q, want 405 Allow=POST", path, rec.Code, rec.Header().Get("Allow"))
		}
	}
	if len(f.store.ops) != 0 {
		t.Fatalf("malformed lot IDs reached the store: %+v", f.store.ops)
	}
	if status, _ := f.service("granter", "POST", grantsPrefix+strings.Repeat("a", 64)+"/void?userId=user_B", ""); status != 200 ||
		len(f.store.ops) != 1 || f.store.ops[0].Terms.ID != strings.Repeat("a", 64) {
		t.Fatalf("the longest well-formed ID was not looked up: %d %+v", status, f.store.ops)
	}
	for _, path := range []string{grantsPrefix + "a/b/void", grantsPrefix + "lot_1/refund", grantsPrefix + "lot_1", grantsPrefix + "lot_1/void/x"} {
		if status, body := f.service("granter", "POST", path+"?userId=user_B", ""); status != 404 || body != `{"error":"Not found"}` {
			t.Errorf("%s: %d %s, want 404 Not found", path, status, body)
		}
	}
}
