package client

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

// TestGrantSendsItsTerms: Grant without options sends the body it always sent; with
// WithExpiry, WithPriority and WithReason it sends them as the API reads them (the expiry
// in RFC 3339 UTC, to the second), and every retry sends the same body with the same key.
func TestGrantSendsItsTerms(t *testing.T) {
	ctx := context.Background()
	ok := newAPIServer(t, http.StatusOK, `{"success":true,"credits":12}`)
	c := testClient(t, ok.URL, StaticToken("t"))
	if n, err := c.Grant(ctx, "user_A", 5); err != nil || n != 12 {
		t.Fatalf("Grant: %d, %v", n, err)
	}
	at := time.Date(2027, 1, 31, 1, 0, 0, 999, time.FixedZone("CET", 3600))
	if _, err := c.Grant(ctx, "user_A", 5, WithExpiry(at), WithPriority(0), WithReason("launch promotion"), WithIdempotencyKey("promo-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Grant(ctx, "user_A", 5, WithPriority(100)); err != nil {
		t.Fatal(err)
	}
	seen := ok.seen()
	want := []string{
		`{"credits":5}`,
		`{"credits":5,"expiresAt":"2027-01-31T00:00:00Z","priority":0,"reason":"launch promotion"}`,
		`{"credits":5,"priority":100}`,
	}
	for i, r := range seen {
		if r.method != "POST" || r.path != "/api/credits/grant" || r.query != "userId=user_A" || r.body != want[i] || r.key == "" {
			t.Errorf("grant %d sent %+v, want POST /api/credits/grant?userId=user_A %s with a key", i+1, r, want[i])
		}
	}
	if seen[1].key != "promo-1" {
		t.Errorf("WithIdempotencyKey beside terms: sent %q", seen[1].key)
	}

	failing := newAPIServer(t, http.StatusServiceUnavailable, `{"error":"Error updating credits"}`)
	_, err := testClient(t, failing.URL, StaticToken("t")).Grant(ctx, "user_A", 5, WithExpiry(at), WithReason("r"))
	if !errors.Is(err, ErrServer) || len(failing.seen()) != 3 {
		t.Fatalf("%v after %d attempts, want ErrServer after 3", err, len(failing.seen()))
	}
	for _, r := range failing.seen() {
		if r.key != IdempotencyKeyOf(err) || r.body != `{"credits":5,"expiresAt":"2027-01-31T00:00:00Z","reason":"r"}` {
			t.Fatalf("a retry sent %+v: another key or body than the first attempt", r)
		}
	}
}

// TestGrantTermsAreForGrantOnly: a term given to another change is refused before anything
// is sent, rather than silently dropped.
func TestGrantTermsAreForGrantOnly(t *testing.T) {
	srv := newAPIServer(t, http.StatusOK, `{"success":true,"credits":1}`)
	c := testClient(t, srv.URL, StaticToken("t"))
	for name, change := range changes {
		if name == "Grant" {
			continue
		}
		for _, term := range []CallOption{WithExpiry(time.Now().Add(time.Hour)), WithPriority(1), WithReason("r")} {
			if err := change(context.Background(), c, term); !errors.Is(err, ErrInvalidRequest) || IdempotencyKeyOf(err) == "" {
				t.Errorf("%s with a grant term: %v, want ErrInvalidRequest (with the key)", name, err)
			}
		}
	}
	if n := len(srv.seen()); n != 0 {
		t.Fatalf("%d requests were sent with terms they cannot carry", n)
	}
}

// TestGrantsAreDecoded: Grants reads the list in the order the API answers it, a lot that
// never expires with a zero ExpiresAt; it sends no key.
func TestGrantsAreDecoded(t *testing.T) {
	srv := newAPIServer(t, http.StatusOK, `{"grants":[`+
		`{"id":"lot_0123456789abcdef","credits":50,"remaining":42,"expiresAt":"2027-01-31T00:00:00Z","priority":10,"source":"api","reason":"launch promotion","grantedAt":"2026-11-25T10:00:00Z"},`+
		`{"id":"lot_fedcba9876543210","credits":20,"remaining":20,"expiresAt":null,"priority":50,"source":"stripe","reference":"cs_test_a1","reason":"","grantedAt":"2026-11-26T09:30:00Z"},`+
		`{"id":"balance","credits":7,"remaining":5,"expiresAt":null,"priority":50,"source":"set","reason":"","grantedAt":"2026-11-24T18:30:00Z"}]}`)
	got, err := testClient(t, srv.URL, StaticToken("t")).Grants(context.Background(), "user A")
	if err != nil {
		t.Fatal(err)
	}
	want := []Grant{
		{ID: "lot_0123456789abcdef", Credits: 50, Remaining: 42, ExpiresAt: time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC), Priority: 10,
			Source: "api", Reason: "launch promotion", GrantedAt: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)},
		{ID: "lot_fedcba9876543210", Credits: 20, Remaining: 20, Priority: 50, Source: "stripe", Reference: "cs_test_a1",
			GrantedAt: time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)},
		{ID: "balance", Credits: 7, Remaining: 5, Priority: 50, Source: "set", GrantedAt: time.Date(2026, 11, 24, 18, 30, 0, 0, time.UTC)},
	}
	if len(got) != len(want) {
		t.Fatalf("%d grants, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Credits != w.Credits || g.Remaining != w.Remaining || !g.ExpiresAt.Equal(w.ExpiresAt) || g.ExpiresAt.IsZero() != w.ExpiresAt.IsZero() ||
			g.Priority != w.Priority || g.Source != w.Source || g.Reference != w.Reference || g.Reason != w.Reason || !g.GrantedAt.Equal(w.GrantedAt) {
			t.Errorf("grant %d: %+v, want %+v", i, g, w)
		}
	}
	if r := srv.seen()[0]; r.method != "GET" || r.path != "/api/credits/grants" || r.query != "userId=user+A" || r.key != "" {
		t.Fatalf("Grants sent %+v", r)
	}

	refused := newAPIServer(t, http.StatusForbidden, `{"error":"Forbidden"}`)
	if _, err := testClient(t, refused.URL, StaticToken("t")).Grants(context.Background(), "u"); !errors.Is(err, ErrForbidden) || IdempotencyKeyOf(err) != "" {
		t.Fatalf("a refused read: %v, want ErrForbidden without a key", err)
	}
}

// TestVoidSendsAndMapsRefusals: Void posts to the lot's path (the ID escaped) with no body
// and a key, and maps the API's refusals: 404 Grant not found is ErrNotFound, 409 Grant has
// nothing left is ErrConflict, neither retried.
func TestVoidSendsAndMapsRefusals(t *testing.T) {
	ok := newAPIServer(t, http.StatusOK, `{"success":true,"credits":7}`)
	c := testClient(t, ok.URL, StaticToken("t"))
	if n, err := c.Void(context.Background(), "user_A", "lot_0123456789abcdef"); err != nil || n != 7 {
		t.Fatalf("Void: %d, %v", n, err)
	}
	if _, err := c.Void(context.Background(), "user_A", "a/b"); err != nil {
		t.Fatal(err)
	}
	seen := ok.seen()
	if r := seen[0]; r.method != "POST" || r.path != "/api/credits/grants/lot_0123456789abcdef/void" || r.query != "userId=user_A" || r.body != "" || r.key == "" {
		t.Fatalf("Void sent %+v", r)
	}
	if seen[1].path != "/api/credits/grants/a%2Fb/void" {
		t.Fatalf("an ID with a slash was sent as %s: it must stay one path segment", seen[1].path)
	}
	for _, c := range []struct {
		status int
		body   string
		want   error
	}{
		{http.StatusNotFound, `{"error":"Grant not found"}`, ErrNotFound},
		{http.StatusConflict, `{"error":"Grant has nothing left"}`, ErrConflict},
		{http.StatusForbidden, `{"error":"Forbidden"}`, ErrForbidden},
	} {
		srv := newAPIServer(t, c.status, c.body)
		_, err := testClient(t, srv.URL, StaticToken("t")).Void(context.Background(), "user_A", "lot_1")
		var apiErr *Error
		if !errors.Is(err, c.want) || !errors.As(err, &apiErr) || apiErr.Message != c.body[10:len(c.body)-2] || IdempotencyKeyOf(err) == "" {
			t.Errorf("%d %s: %v, want %v with the message and the key", c.status, c.body, err, c.want)
		}
		if n := len(srv.seen()); n != 1 {
			t.Errorf("%d %s was sent %d times; a refusal is not retried", c.status, c.body, n)
		}
	}
}
