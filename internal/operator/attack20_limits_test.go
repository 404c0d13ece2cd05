package operator_test

// Attacks on issue 20's lots at their bounds: the closed lots kept for a second void, the
// 100 open lots, and the balance lot a set adds.

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/test/framework"
)

// a20Grant grants body to user through the API as a caller with the grant verb.
func a20Grant(t *testing.T, token, user, key, body string) (int, string) {
	t.Helper()
	return request(t, "POST", creditsURL(apiBase, "/api/credits/grant", user), token, body, "Idempotency-Key", key)
}

// a20Void voids lot of user through the API.
func a20Void(t *testing.T, token, user, lot string) (int, string) {
	t.Helper()
	return request(t, "POST", creditsURL(apiBase, "/api/credits/grants/"+lot+"/void", user), token, "")
}

// a20LotByReason is the ID of user's listed lot with reason, or "".
func a20LotByReason(t *testing.T, token, user, reason string) string {
	t.Helper()
	for _, g := range grantsOf(t, token, user).Grants {
		if g.Reason == reason {
			return g.ID
		}
	}
	return ""
}

// a20TwentyClosedLots grants user 20 lots of 1 credit and voids each: the record then
// keeps MaxClosedLots closed lots, as any user who had 20 promotions withdrawn does.
func a20TwentyClosedLots(t *testing.T, token, user string) {
	t.Helper()
	for i := range 20 {
		if status, body := a20Grant(t, token, user, fmt.Sprintf("%s-c%d", user, i), fmt.Sprintf(`{"credits":1,"reason":"closed %d"}`, i)); status != 200 {
			t.Fatalf("grant %d: %d %s", i, status, body)
		}
	}
	for _, g := range grantsOf(t, token, user).Grants {
		if status, body := a20Void(t, token, user, g.ID); status != 200 {
			t.Fatalf("void %s: %d %s", g.ID, status, body)
		}
	}
	if n := len(statusOf(t, user).Spec.Lots); n != 20 {
		t.Fatalf("after 20 voids the record keeps %d lots, want the 20 closed ones", n)
	}
}

// TestAttack20VoidOfAHeldLotAfterTwentyClosedLots: a user with 20 voided lots (the most
// kept) holds 2 credits of a promotion; voiding the promotion must work as docs/reservations.md
// says (what is left removed, the held credits removed when their hold returns them).
// compactLots trims only closed lots no hold took from, so the voided promotion is a 21st
// closed lot, checkLots refuses the record (closed > MaxClosedLots) and the void is a 500.
func TestAttack20VoidOfAHeldLotAfterTwentyClosedLots(t *testing.T) {
	user := "user_A20Closed1"
	admin := serviceAccountToken(t, "a20-closed1-admin", "credits-admin")
	a20TwentyClosedLots(t, admin, user)
	if status, body := a20Grant(t, admin, user, "a20-closed1-promo", `{"credits":3,"priority":0,"reason":"promo"}`); status != 200 {
		t.Fatalf("grant the promotion: %d %s", status, body)
	}
	promo := a20LotByReason(t, admin, user, "promo")
	status, hold, body := reserveAs(t, apiBase, tokenFor(t, user), "", `{"credits":2,"ttlSeconds":600}`)
	if status != 200 || hold.Credits != 1 {
		t.Fatalf("reserve 2 of the promotion: %d %s", status, body)
	}
	if status, body := a20Void(t, admin, user, promo); status != 200 || body != `{"success":true,"credits":0}` {
		t.Fatalf("void of the held promotion with 20 closed lots kept: %d %s, want 200 {\"success\":true,\"credits\":0}", status, body)
	}
	if status, body := request(t, "POST", holdURL(hold.ReservationID, "release"), tokenFor(t, user), ""); status != 200 || body != `{"success":true,"credits":0}` {
		t.Fatalf("release after the void: %d %s, want its credits removed (credits 0)", status, body)
	}
}

// TestAttack20HeldLotExpiringAfterTwentyClosedLots: the same 21st closed lot made by an
// expiry instead of a void. The controller's ExpireLots is refused as untrusted (and the
// controller swallows ErrUntrusted), so the lot is never removed, and every later write of
// the user runs expireLots first and is refused too: the user cannot spend at all.
func TestAttack20HeldLotExpiringAfterTwentyClosedLots(t *testing.T) {
	user := "user_A20Closed2"
	admin := serviceAccountToken(t, "a20-closed2-admin", "credits-admin")
	a20TwentyClosedLots(t, admin, user)
	if status, body := request(t, "POST", creditsURL(apiBase, "/api/credits", user), admin, `{"credits":5}`, "Idempotency-Key", "a20-closed2-set"); status != 200 {
		t.Fatalf("set 5: %d %s", status, body)
	}
	expires := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	body := fmt.Sprintf(`{"credits":2,"priority":0,"expiresAt":%q,"reason":"trial"}`, expires.UTC().Format(time.RFC3339))
	if status, got := a20Grant(t, admin, user, "a20-closed2-trial", body); status != 200 || got != `{"success":true,"credits":7}` {
		t.Fatalf("grant the trial: %d %s", status, got)
	}
	if status, _, got := reserveAs(t, apiBase, tokenFor(t, user), "", `{"credits":1,"ttlSeconds":600}`); status != 200 {
		t.Fatalf("reserve 1 of the trial: %d %s", status, got)
	}
	// docs/api.md: at expiresAt the controller removes what is left (1) within 5 s.
	time.Sleep(time.Until(expires) + 5*time.Second)
	stored := statusOf(t, user).Spec.Credits
	status, got := request(t, "POST", apiBase+"/api/credits/consume", tokenFor(t, user), "")
	if stored != 5 || status != 200 || got != `{"success":true,"credits":4}` {
		t.Fatalf("5 s after the trial expired: stored spec.credits %d (want 5: its last credit removed); consume 1: %d %s (want 200 {\"success\":true,\"credits\":4})",
			stored, status, got)
	}
}

// a20HundredLots creates user's record as the API leaves a user granted 100 lots of 1
// credit, each with its own reason (so none merge), in one write as kubectl would: the
// state 100 grants make, without 100 requests.
func a20HundredLots(t *testing.T, user string) {
	t.Helper()
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	obj := &creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{Name: account.ObjectNameForUser(user), Namespace: testNamespace},
		Spec: creditsv1alpha1.UserCreditsSpec{UserID: user, Credits: 100}}
	for i := range 100 {
		obj.Spec.Lots = append(obj.Spec.Lots, creditsv1alpha1.Lot{ID: fmt.Sprintf("lot_%016x", i+1), Credits: 1, Remaining: 1, Priority: 50,
			Source: account.SourceAPI, Reason: fmt.Sprintf("lot %d", i), GrantedAt: now})
	}
	if err := k8sClient.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 5*time.Second, func() error {
		if got := balanceOf(t, user); got != `{"credits":100}` {
			return fmt.Errorf("balance %s, want 100", got)
		}
		return nil
	})
}

// TestAttack20SetAtOneHundredLots: a user with 100 granted lots and no balance lot is set
// higher with POST /api/credits, which docs/api.md says adds the difference to the
// balance lot. account.set adds that lot as a 101st open lot, checkLots refuses the
// record, and the set is a 500: "POST /api/credits (set) ... keep working" (issue 20) fails.
// (The same with the 100 lots made by 100 grants through the API: 500 too.)
func TestAttack20SetAtOneHundredLots(t *testing.T) {
	user := "user_A20Hundred1"
	admin := serviceAccountToken(t, "a20-hundred1-admin", "credits-admin")
	a20HundredLots(t, user)
	if n := len(grantsOf(t, admin, user).Grants); n != 100 {
		t.Fatalf("%d lots listed, want 100", n)
	}
	if status, body := request(t, "POST", creditsURL(apiBase, "/api/credits", user), admin, `{"credits":150}`); status != 200 || body != `{"success":true,"credits":150}` {
		t.Fatalf("set 150 with 100 lots open: %d %s, want 200 {\"success\":true,\"credits\":150}", status, body)
	}
}
