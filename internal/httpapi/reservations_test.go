package httpapi

import (
	"strings"
	"testing"
	"time"

	"github.com/gitread/usercredits-operator/internal/account"
)

// TestMalformedReservationIDsAreUnknownReservations: a hold ID the store can never have
// issued answers as an unknown one does, 404 {"error":"Reservation not found"}, and never
// reaches the store; but only after the caller is admitted like on any route (401
// without a token, 403 without the verb), and the method is checked as on any hold.
func TestMalformedReservationIDsAreUnknownReservations(t *testing.T) {
	f := newServiceFixture(t, verbAuthorizer{verbs: map[string][]string{"admin": {"consume"}, "viewer": {"get"}}})
	clerk := []string{"Authorization", "Bearer " + f.token}
	for _, id := range []string{"bad$id", strings.Repeat("a", 65), "rsv_%E2%80%8B", "", "rsv.1"} {
		for _, action := range []string{"capture", "release"} {
			path := reservationsPrefix + id + "/" + action
			expect(t, path+" without a token", f.do("POST", path, ""), 401, `{"error":"Unauthorized"}`)
			if status, body := f.service("viewer", "POST", path+"?userId=user_A", ""); status != 403 || body != `{"error":"Forbidden"}` {
				t.Errorf("%s by a service without the consume verb: %d %s, want 403", path, status, body)
			}
			expect(t, path+" by a Clerk user", f.do("POST", path, "", clerk...), 404, `{"error":"Reservation not found"}`)
			if status, body := f.service("admin", "POST", path+"?userId=user_A", ""); status != 404 || body != `{"error":"Reservation not found"}` {
				t.Errorf("%s by a service: %d %s, want 404 Reservation not found", path, status, body)
			}
			if rec := f.do("GET", path, "", clerk...); rec.Code != 405 || rec.Header().Get("Allow") != "POST" {
				t.Errorf("GET %s: %d Allow=%q, want 405 Allow=POST", path, rec.Code, rec.Header().Get("Allow"))
			}
		}
	}
	if len(f.store.ops) != 0 {
		t.Fatalf("malformed hold IDs reached the store: %+v", f.store.ops)
	}

	// The longest well-formed ID is looked up, and an unknown one answers the same body.
	f.store.err = account.ErrReservationNotFound
	expect(t, "unknown 64-character ID", f.do("POST", reservationsPrefix+strings.Repeat("a", 64)+"/capture", "", clerk...), 404, `{"error":"Reservation not found"}`)
	if len(f.store.ops) != 1 || f.store.ops[0].ReservationID != strings.Repeat("a", 64) {
		t.Fatalf("a well-formed ID was not looked up: %+v", f.store.ops)
	}
	// Paths that are no hold's route stay unknown paths.
	for _, path := range []string{reservationsPrefix + "a/b/capture", reservationsPrefix + "rsv_1/refund", reservationsPrefix + "rsv_1"} {
		expect(t, path, f.do("POST", path, "", clerk...), 404, `{"error":"Not found"}`)
	}
}

// TestReleaseBodyIsValidated: release reads no member, so it accepts only an empty body or
// {}; anything else is refused as capture refuses it, and nothing is released.
func TestReleaseBodyIsValidated(t *testing.T) {
	f := newFixture(t, false)
	f.store.applyResult = account.Result{Credits: 6}
	path := reservationsPrefix + "rsv_0123456789abcdef/release"
	clerk := []string{"Authorization", "Bearer " + f.token}
	for _, body := range []string{"", "{}", " { }\n", "\n"} {
		expect(t, "release with body "+body, f.do("POST", path, body, clerk...), 200, `{"success":true,"credits":6}`)
	}
	if len(f.store.ops) != 4 || f.store.ops[0].Kind != account.OpRelease || f.store.ops[0].ReservationID != "rsv_0123456789abcdef" {
		t.Fatalf("releases sent %+v", f.store.ops)
	}
	f.store.ops = nil
	for _, body := range []string{`{"credits":1}`, `{"reason":"failed"}`, `{`, `{}x`, `{} {}`, `null`, `[]`, `"release"`, `1`, "\xff"} {
		expect(t, "release with body "+body, f.do("POST", path, body, clerk...), 400, `{"error":"Invalid credits value"}`)
		if body != `{"credits":1}` { // capture reads that one
			expect(t, "capture with body "+body, f.do("POST", reservationsPrefix+"rsv_0123456789abcdef/capture", body, clerk...), 400, `{"error":"Invalid credits value"}`)
		}
	}
	if len(f.store.ops) != 0 {
		t.Fatalf("invalid release bodies reached the store: %+v", f.store.ops)
	}
	expect(t, "release with a body over 1 MiB", f.do("POST", path, `{"pad":"`+strings.Repeat("x", MaxBodyBytes)+`"}`, clerk...), 413, `{"error":"Request body too large"}`)
}

// TestTransactionsBody: each entry is type, credits, balance, at, and the reference of
// what it came from when it has one (a purchase's Checkout Session).
func TestTransactionsBody(t *testing.T) {
	f := newFixture(t, false)
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	f.store.history = []account.Transaction{
		{Kind: account.KindPurchase, Credits: 10, Balance: 27, At: at, Reference: "cs_test_a1"},
		{Kind: account.OpSet, Credits: 17, Balance: 17, At: at.Add(-time.Minute)},
	}
	expect(t, "history", f.do("GET", "/api/credits/transactions", "", "Authorization", "Bearer "+f.token), 200,
		`{"transactions":[{"type":"purchase","credits":10,"balance":27,"at":"2026-11-25T10:00:00Z","reference":"cs_test_a1"},`+
			`{"type":"set","credits":17,"balance":17,"at":"2026-11-25T09:59:00Z"}]}`)
}
