package operator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/metrics"
	"github.com/gitread/usercredits-operator/test/framework"
)

// grantList is GET /api/credits/grants's answer.
type grantList struct {
	Grants []struct {
		ID        string  `json:"id"`
		Credits   int64   `json:"credits"`
		Remaining int64   `json:"remaining"`
		ExpiresAt *string `json:"expiresAt"`
		Priority  int32   `json:"priority"`
		Source    string  `json:"source"`
		Reference string  `json:"reference"`
		Reason    string  `json:"reason"`
		GrantedAt string  `json:"grantedAt"`
	} `json:"grants"`
}

func grantsOf(t *testing.T, token, user string) grantList {
	t.Helper()
	status, body := request(t, "GET", creditsURL(apiBase, "/api/credits/grants", user), token, "")
	var g grantList
	if status != 200 || json.Unmarshal([]byte(body), &g) != nil {
		t.Fatalf("GET grants: %d %s", status, body)
	}
	return g
}

// TestLotsThroughTheAPI: grants with expiry and priority are lots, listed in spending order,
// spent in it; a void removes what is left of one.
func TestLotsThroughTheAPI(t *testing.T) {
	user := "user_Lots1"
	admin := serviceAccountToken(t, "lots-admin", "credits-admin")
	grant := func(key, body string) (int, string) {
		return request(t, "POST", creditsURL(apiBase, "/api/credits/grant", user), admin, body, "Idempotency-Key", key)
	}
	in := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339) }
	for _, g := range []struct{ key, body, want string }{
		{"g1", `{"credits":5}`, `{"success":true,"credits":5}`},
		{"g2", `{"credits":3,"expiresAt":"` + in(48*time.Hour) + `","priority":50,"reason":"monthly allowance"}`, `{"success":true,"credits":8}`},
		{"g3", `{"credits":2,"priority":10,"reason":"launch promo"}`, `{"success":true,"credits":10}`},
	} {
		if status, body := grant(g.key, g.body); status != 200 || body != g.want {
			t.Fatalf("grant %s: %d %s, want %s", g.body, status, body, g.want)
		}
	}
	if status, body := grant("g2", `{"credits":3,"expiresAt":"`+in(72*time.Hour)+`","priority":50,"reason":"monthly allowance"}`); status != 409 {
		t.Fatalf("the same key with another expiry: %d %s, want 409", status, body)
	}
	g := grantsOf(t, admin, user)
	if len(g.Grants) != 3 || g.Grants[0].Reason != "launch promo" || g.Grants[1].ExpiresAt == nil || g.Grants[2].ExpiresAt != nil ||
		g.Grants[0].Source != "api" || g.Grants[0].Priority != 10 {
		t.Fatalf("grants in spending order: %+v", g.Grants)
	}
	if status, body := request(t, "POST", apiBase+"/api/credits/consume", tokenFor(t, user), ""); status != 200 || body != `{"success":true,"credits":9}` {
		t.Fatalf("consume 1 as the user (from the promo): %d %s", status, body)
	}
	if status, body := request(t, "POST", creditsURL(apiBase, "/api/credits/consume", user), admin, `{"credits":3}`); status != 200 || body != `{"success":true,"credits":6}` {
		t.Fatalf("consume 3: %d %s", status, body)
	}
	g = grantsOf(t, admin, user)
	if len(g.Grants) != 2 || g.Grants[0].Remaining != 1 || g.Grants[0].ExpiresAt == nil || g.Grants[1].Remaining != 5 {
		t.Fatalf("after spending 4 (promo 2, then 2 of the allowance): %+v", g.Grants)
	}
	lot := g.Grants[1].ID
	void := func(key string) (int, string) {
		return request(t, "POST", creditsURL(apiBase, "/api/credits/grants/"+lot+"/void", user), admin, "", "Idempotency-Key", key)
	}
	if status, body := void("v1"); status != 200 || body != `{"success":true,"credits":1}` {
		t.Fatalf("void: %d %s", status, body)
	}
	if status, body := void("v1"); status != 200 || body != `{"success":true,"credits":1}` {
		t.Fatalf("void replayed: %d %s", status, body)
	}
	if status, body := void("v2"); status != 409 || body != `{"error":"Grant has nothing left"}` {
		t.Fatalf("void twice: %d %s", status, body)
	}
	if status, body := request(t, "POST", creditsURL(apiBase, "/api/credits/grants/lot_unknown/void", user), admin, ""); status != 404 || body != `{"error":"Grant not found"}` {
		t.Fatalf("void of an unknown lot: %d %s", status, body)
	}
	if status, body := request(t, "POST", apiBase+"/api/credits/grants/"+lot+"/void", tokenFor(t, user), ""); status != 403 {
		t.Fatalf("a Clerk user voids: %d %s, want 403", status, body)
	}
	_, history := request(t, "GET", creditsURL(apiBase, "/api/credits/transactions", user), admin, "")
	if !strings.Contains(history, `{"type":"void","credits":5,"balance":1,`) {
		t.Fatalf("history %s lacks the void", history)
	}
}

// TestLotsExpire: at its expiresAt the controller removes what is left of a lot within 5 s,
// with a history entry, a Normal Event and the metric; the user's status says when the
// next credits expire.
func TestLotsExpire(t *testing.T) {
	ctx := context.Background()
	user := "user_LotsExpire1"
	admin := serviceAccountToken(t, "lots-expire-admin", "credits-admin")
	expires := time.Now().Add(3 * time.Second).Truncate(time.Second).Add(time.Second)
	before := testutil.ToFloat64(metrics.CreditsExpired)
	for key, body := range map[string]string{"e1": `{"credits":2}`, "e2": `{"credits":4,"expiresAt":"` + expires.UTC().Format(time.RFC3339) + `"}`} {
		if status, got := request(t, "POST", creditsURL(apiBase, "/api/credits/grant", user), admin, body, "Idempotency-Key", key); status != 200 {
			t.Fatalf("grant %s: %d %s", body, status, got)
		}
	}
	framework.Eventually(t, 5*time.Second, func() error {
		s := statusOf(t, user).Status
		if s.NextExpiry == nil || !s.NextExpiry.Time.Equal(expires) || s.ExpiringCredits != 4 {
			return fmt.Errorf("status next expiry %v of %d, want %v of 4", s.NextExpiry, s.ExpiringCredits, expires)
		}
		return nil
	})
	framework.Eventually(t, time.Until(expires)+5*time.Second, func() error {
		if _, body := request(t, "GET", creditsURL(apiBase, "/api/credits", user), admin, ""); body != `{"credits":2}` {
			return fmt.Errorf("GET = %s", body)
		}
		if obj := statusOf(t, user); obj.Spec.Credits != 2 {
			return fmt.Errorf("stored %d", obj.Spec.Credits)
		}
		return nil
	})
	t.Logf("removed %v after its expiry", time.Since(expires).Round(time.Millisecond))
	if got := testutil.ToFloat64(metrics.CreditsExpired) - before; got < 4 {
		t.Errorf("usercredits_credits_expired_total grew by %v, want 4", got)
	}
	_, history := request(t, "GET", creditsURL(apiBase, "/api/credits/transactions", user), admin, "")
	if !strings.Contains(history, `{"type":"expire","credits":4,"balance":2,`) {
		t.Errorf("history %s lacks the expiry", history)
	}
	framework.Eventually(t, 5*time.Second, func() error {
		var list eventsv1.EventList
		if err := k8sClient.List(ctx, &list, client.InNamespace(testNamespace)); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Name == account.ObjectNameForUser(user) && e.Reason == "CreditsExpired" && e.Type == "Normal" {
				return nil
			}
		}
		return fmt.Errorf("no CreditsExpired Event")
	})
	if s := statusOf(t, user).Status; s.NextExpiry != nil || s.ExpiringCredits != 0 {
		t.Errorf("after the expiry the status still says %v of %d", s.NextExpiry, s.ExpiringCredits)
	}
}

// TestEditOfCreditsThatBreaksTheLotsIsRefused: with lots stored, kubectl cannot make
// spec.credits disagree with them, and the apiserver says what to do; without lots an
// edit of spec.credits works as it always did.
func TestEditOfCreditsThatBreaksTheLotsIsRefused(t *testing.T) {
	admin := serviceAccountToken(t, "lots-edit-admin", "credits-admin")
	plain, lotted := "user_LotsEdit1", "user_LotsEdit2"
	expectCall(t, "seed", "POST", tokenFor(t, plain), `{"credits":5}`, 200, `{"success":true,"credits":5}`)
	kubectl(t, "patch", "uc", "-n", testNamespace, account.ObjectNameForUser(plain), "--type=merge", "-p", `{"spec":{"credits":7}}`)
	expectCall(t, "a plain balance edited", "GET", tokenFor(t, plain), "", 200, `{"credits":7}`)

	if status, body := request(t, "POST", creditsURL(apiBase, "/api/credits/grant", lotted), admin, `{"credits":3,"priority":10}`, "Idempotency-Key", "le1"); status != 200 {
		t.Fatalf("grant: %d %s", status, body)
	}
	err := k8sClient.Patch(context.Background(), statusOf(t, lotted), client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"credits":9}}`)))
	if err == nil || !strings.Contains(err.Error(), "spec.credits must equal the sum of spec.lots") {
		t.Fatalf("an edit of spec.credits that breaks the lots: %v", err)
	}
	if got := statusOf(t, lotted).Spec.Credits; got != 3 {
		t.Fatalf("stored %d after a refused edit", got)
	}
	// A lot edited past what it was granted, or a closed lot given credits back, would be a
	// record the API refuses to serve: the apiserver refuses the edit instead.
	obj := statusOf(t, lotted)
	if len(obj.Spec.Lots) != 1 {
		t.Fatalf("lots after one grant: %+v", obj.Spec.Lots)
	}
	for _, edit := range []struct{ patch, says string }{
		{`[{"op":"replace","path":"/spec/lots/0/remaining","value":4},{"op":"replace","path":"/spec/credits","value":4}]`, "a lot's remaining cannot exceed its credits"},
		{`[{"op":"add","path":"/spec/lots/0/closed","value":"voided"}]`, "a closed (voided or expired) lot keeps no remaining credits"},
	} {
		err := k8sClient.Patch(context.Background(), statusOf(t, lotted), client.RawPatch("application/json-patch+json", []byte(edit.patch)))
		if err == nil || !strings.Contains(err.Error(), edit.says) {
			t.Errorf("edit %s: %v, want a refusal saying %q", edit.patch, err, edit.says)
		}
	}
	if got := statusOf(t, lotted).Spec; got.Credits != 3 || got.Lots[0].Remaining != 3 || got.Lots[0].Closed != "" {
		t.Fatalf("stored %+v after refused edits", got)
	}
}
