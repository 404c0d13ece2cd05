package operator_test

// Attacks on issue 20's lot terms and answers: the spending order, a void of a spent lot,
// expiresAt values the parser takes but the store cannot keep, and a hold whose lot expired.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gitread/usercredits-operator/test/framework"
)

// TestAttack20SameSecondGrantsSpentOldestFirst: lots of the same priority and expiry are
// spent oldest first (issue 20, docs/api.md "then the oldest"). grantedAt is kept to the
// second and the tie is broken by the lot ID, which is random (newID), so grants made within
// one second are listed and spent in a random order.
func TestAttack20SameSecondGrantsSpentOldestFirst(t *testing.T) {
	user := "user_A20Order1"
	admin := serviceAccountToken(t, "a20-order1-admin", "credits-admin")
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond))) // the start of a second
	const n = 8
	for i := range n {
		if status, body := a20Grant(t, admin, user, fmt.Sprintf("a20-order1-%d", i), fmt.Sprintf(`{"credits":1,"priority":30,"reason":"g%d"}`, i)); status != 200 {
			t.Fatalf("grant %d: %d %s", i, status, body)
		}
	}
	var got []string
	for _, g := range grantsOf(t, admin, user).Grants {
		got = append(got, g.Reason+"@"+g.GrantedAt)
	}
	for i := range n {
		if i >= len(got) || !strings.HasPrefix(got[i], fmt.Sprintf("g%d@", i)) {
			t.Fatalf("spending order of %d grants made one after another: %v, want g0 (the oldest) to g%d", n, got, n-1)
		}
	}
}

// TestAttack20VoidOfASpentLotIs409: "voiding an empty or expired lot is 409" (issue 20; the
// code's own ErrLotClosed says "spent, voided or expired"). A lot spent to 0 is dropped by
// compactLots at once, so its void is answered 404 "Grant not found", as for an ID that was
// never a lot.
func TestAttack20VoidOfASpentLotIs409(t *testing.T) {
	user := "user_A20Spent1"
	admin := serviceAccountToken(t, "a20-spent1-admin", "credits-admin")
	if status, body := a20Grant(t, admin, user, "a20-spent1-g", `{"credits":2,"priority":0,"reason":"spent"}`); status != 200 {
		t.Fatalf("grant: %d %s", status, body)
	}
	lot := a20LotByReason(t, admin, user, "spent")
	if status, body := request(t, "POST", apiBase+"/api/credits/consume", tokenFor(t, user), `{"credits":2}`); status != 200 || body != `{"success":true,"credits":0}` {
		t.Fatalf("consume 2: %d %s", status, body)
	}
	if status, body := a20Void(t, admin, user, lot); status != 409 || body != `{"error":"Grant has nothing left"}` {
		t.Fatalf("void of the lot just spent to 0: %d %s, want 409 {\"error\":\"Grant has nothing left\"}", status, body)
	}
}

// TestAttack20FractionalExpiresAtNotCutShort: parseGrant takes RFC 3339 with a fraction of a
// second, but a lot's expiresAt is stored as metav1.Time, to the second, rounded down: the
// lot expires up to a second before the time it was granted until (holds round theirs up,
// account.reserve). Granted until less than a second ahead, the grant answers 200 with credits
// a read right after no longer counts: a grant whose expiresAt has passed, acknowledged.
func TestAttack20FractionalExpiresAtNotCutShort(t *testing.T) {
	user := "user_A20Frac1"
	admin := serviceAccountToken(t, "a20-frac1-admin", "credits-admin")
	later := time.Now().Truncate(time.Second).Add(time.Hour + 900*time.Millisecond)
	body := fmt.Sprintf(`{"credits":4,"expiresAt":%q,"reason":"later"}`, later.UTC().Format(time.RFC3339Nano))
	if status, got := a20Grant(t, admin, user, "a20-frac1-later", body); status != 200 {
		t.Fatalf("grant until %s: %d %s", later.Format(time.RFC3339Nano), status, got)
	}
	for _, g := range grantsOf(t, admin, user).Grants {
		if g.Reason != "later" {
			continue
		}
		if at, err := time.Parse(time.RFC3339, *g.ExpiresAt); err != nil || at.Before(later) {
			t.Errorf("granted until %s, the lot expires at %s: earlier than granted", later.UTC().Format(time.RFC3339Nano), *g.ExpiresAt)
		}
	}

	// Within a second: wait until early in a second, grant until 0.9 s into it.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 50*time.Millisecond)))
	soon := time.Now().Truncate(time.Second).Add(900 * time.Millisecond)
	body = fmt.Sprintf(`{"credits":3,"expiresAt":%q}`, soon.UTC().Format(time.RFC3339Nano))
	status, got := a20Grant(t, admin, user, "a20-frac1-soon", body)
	_, read := request(t, "GET", creditsURL(apiBase, "/api/credits", user), admin, "")
	if time.Now().After(soon) {
		t.Skip("too slow to read before the requested expiry")
	}
	if status == 200 && got != `{"success":true,"credits":`+strings.TrimPrefix(read, `{"credits":`) {
		t.Fatalf("grant until %s (still ahead) answered %s, but a read right after answers %s: the lot was stored already expired",
			soon.UTC().Format(time.RFC3339Nano), got, read)
	}
}

// TestAttack20ExpiresAtPastYear9999InUTC: "9999-12-31T23:59:59-23:59" is RFC 3339 and in the
// future, so parseGrant takes it; in UTC it is in year 10000, which metav1.Time writes as
// "10000-01-01T23:58:59Z", no date-time the apiserver accepts. A bad input must be a 4xx
// (docs/bad-inputs.md: nothing stored, 400 Invalid expiresAt), or be stored and served.
func TestAttack20ExpiresAtPastYear9999InUTC(t *testing.T) {
	user := "user_A20Year1"
	admin := serviceAccountToken(t, "a20-year1-admin", "credits-admin")
	status, body := a20Grant(t, admin, user, "a20-year1", `{"credits":5,"expiresAt":"9999-12-31T23:59:59-23:59"}`)
	switch {
	case status == 400 && body == `{"error":"Invalid expiresAt"}`:
	case status == 200:
		if got := balanceOf(t, user); got != `{"credits":5}` {
			t.Fatalf("granted, then read as %s", got)
		}
	default:
		t.Fatalf("grant until 9999-12-31T23:59:59-23:59: %d %s, want 400 {\"error\":\"Invalid expiresAt\"} (or the lot stored)", status, body)
	}
}

// TestAttack20ReleaseAfterHeldLotExpired: docs/reservations.md: a hold released after its
// lot expired removes its credits with one expire transaction naming the lot. The lot had
// nothing left to spend (all held), so the controller never closed it (NextLotExpiry skips
// it); the release's expireLots closes it then, recording a removal of 0 credits: an extra
// "expire" of 0 in the history (and a CreditsExpired Event of 0 credits).
func TestAttack20ReleaseAfterHeldLotExpired(t *testing.T) {
	user := "user_A20HeldExp1"
	admin := serviceAccountToken(t, "a20-heldexp1-admin", "credits-admin")
	tok := tokenFor(t, user)
	expires := time.Now().Add(time.Second).Truncate(time.Second).Add(time.Second)
	body := fmt.Sprintf(`{"credits":2,"expiresAt":%q}`, expires.UTC().Format(time.RFC3339))
	if status, got := a20Grant(t, admin, user, "a20-heldexp1", body); status != 200 {
		t.Fatalf("grant: %d %s", status, got)
	}
	status, hold, got := reserveAs(t, apiBase, tok, "", `{"credits":2,"ttlSeconds":600}`)
	if status != 200 || hold.Credits != 0 {
		t.Fatalf("reserve all of the lot: %d %s", status, got)
	}
	time.Sleep(time.Until(expires) + 2*time.Second)
	if status, got := request(t, "POST", holdURL(hold.ReservationID, "release"), tok, ""); status != 200 || got != `{"success":true,"credits":0}` {
		t.Fatalf("release after the lot expired: %d %s, want its 2 credits removed", status, got)
	}
	framework.Eventually(t, 2*time.Second, func() error {
		_, history := request(t, "GET", apiBase+"/api/credits/transactions", tok, "")
		if strings.Contains(history, `"type":"expire","credits":0,`) {
			return fmt.Errorf("history %s records an expiry of 0 credits", history)
		}
		if !strings.Contains(history, `{"type":"expire","credits":2,"balance":0,`) {
			return fmt.Errorf("history %s lacks the expiry of the 2 returned credits", history)
		}
		return nil
	})
}

// TestAttack20HeldBalanceLotListed: docs/api.md: "A lot is listed while it can be spent
// from: it has credits left or held". With 3 set and 2 held, GET /api/credits/grants lists
// the balance lot (credits 3, remaining 1); with 2 set and 2 held it lists nothing, as
// lotsOf makes no balance lot for spec.credits 0: the held credits vanish from the list.
func TestAttack20HeldBalanceLotListed(t *testing.T) {
	user := "user_A20HeldBal1"
	tok := tokenFor(t, user)
	expectCall(t, "set 2", "POST", tok, `{"credits":2}`, 200, `{"success":true,"credits":2}`)
	if status, _, body := reserveAs(t, apiBase, tok, "", `{"credits":2,"ttlSeconds":600}`); status != 200 {
		t.Fatalf("reserve 2: %d %s", status, body)
	}
	g := grantsOf(t, tok, user).Grants
	if len(g) != 1 || g[0].ID != "balance" || g[0].Credits != 2 || g[0].Remaining != 0 {
		t.Fatalf("grants with the whole balance held: %+v, want the balance lot (credits 2, remaining 0)", g)
	}
}
