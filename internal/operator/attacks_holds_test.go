package operator_test

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

// TestAttackHoldThatCanNeverBeReturned (issue 19 §2, attack 3): available plus held never
// exceeds the largest balance, 2^53-1. Before the fix, a grant on top of a hold taken from
// the largest balance succeeded, and the hold could then never come back: its release was
// 400, and the controller's expiry failed forever. A grant, or a set, that would let the
// two together exceed it is refused and changes nothing; the hold is then released, or
// expires, as any other.
func TestAttackHoldThatCanNeverBeReturned(t *testing.T) {
	admin := serviceAccountToken(t, "attack-max-admin", "credits-admin")
	const max = account.MaxBalance
	type step struct {
		name, path, body, key string
		status                int
		want                  string
		stored                string // holdState after it
	}
	run := func(user string, steps []step) {
		t.Helper()
		for _, s := range steps {
			hdr := []string{}
			if s.key != "" {
				hdr = []string{"Idempotency-Key", s.key}
			}
			status, body := request(t, "POST", creditsURL(apiBase, s.path, user), admin, s.body, hdr...)
			if status != s.status || body != s.want {
				t.Errorf("%s: %d %s, want %d %s", s.name, status, body, s.status, s.want)
			}
			if got := holdState(t, user); got != s.stored {
				t.Errorf("%s: stored %s, want %s", s.name, got, s.stored)
			}
		}
	}
	invalid := `{"error":"Invalid credits value"}`
	// Before the fix these objects hold a hold the controller fails to expire forever: they
	// must not stay behind for the rest of the suite.
	t.Cleanup(func() {
		for _, user := range []string{"user_AttackMaxHold1", "user_AttackMaxHold2"} {
			obj := &creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{Name: account.ObjectNameForUser(user), Namespace: testNamespace}}
			_ = k8sClient.Delete(context.Background(), obj)
		}
	})

	user := "user_AttackMaxHold1"
	run(user, []step{
		{"set the largest balance", "/api/credits", fmt.Sprintf(`{"credits":%d}`, max), "", 200, fmt.Sprintf(`{"success":true,"credits":%d}`, max), fmt.Sprintf("available %d, 0 open holds of 0", max)},
	})
	status, hold, body := reserveAs(t, apiBase, admin, "?userId="+user, `{"credits":10,"ttlSeconds":600}`)
	if status != 200 || hold.Credits != max-10 {
		t.Fatalf("reserve 10 of the largest balance: %d %s", status, body)
	}
	held := fmt.Sprintf("available %d, 1 open holds of 10", max-10)
	returned := fmt.Sprintf("available %d, 0 open holds of 0", max)
	run(user, []step{
		{"grant 10 on top of the hold", "/api/credits/grant", `{"credits":10}`, "attack-max-grant-1", 400, invalid, held},
		{"release the hold", "/api/credits/reservations/" + hold.ReservationID + "/release", "", "", 200, fmt.Sprintf(`{"success":true,"credits":%d}`, max), returned},
	})
	status, hold, body = reserveAs(t, apiBase, admin, "?userId="+user, `{"credits":10,"ttlSeconds":600}`)
	if status != 200 || hold.Credits != max-10 {
		t.Fatalf("reserve 10 of the largest balance again: %d %s", status, body)
	}
	run(user, []step{
		{"set the largest balance with 10 held", "/api/credits", fmt.Sprintf(`{"credits":%d}`, max), "", 400, invalid, held},
		{"set the largest balance less what is held", "/api/credits", fmt.Sprintf(`{"credits":%d}`, max-10), "", 200, fmt.Sprintf(`{"success":true,"credits":%d}`, max-10), held},
		{"release the second hold", "/api/credits/reservations/" + hold.ReservationID + "/release", "", "", 200, fmt.Sprintf(`{"success":true,"credits":%d}`, max), returned},
	})

	// A hold with a short ttl comes back by itself, whatever was granted meanwhile.
	user = "user_AttackMaxHold2"
	run(user, []step{
		{"set the largest balance", "/api/credits", fmt.Sprintf(`{"credits":%d}`, max), "", 200, fmt.Sprintf(`{"success":true,"credits":%d}`, max), fmt.Sprintf("available %d, 0 open holds of 0", max)},
	})
	if status, _, body := reserveAs(t, apiBase, admin, "?userId="+user, `{"credits":10,"ttlSeconds":1}`); status != 200 {
		t.Fatalf("reserve 10 for 1s: %d %s", status, body)
	}
	expiresAt := statusOf(t, user).Spec.Reservations[0].ExpiresAt.Time
	run(user, []step{
		{"grant 10 on top of the short hold", "/api/credits/grant", `{"credits":10}`, "attack-max-grant-2", 400, invalid, fmt.Sprintf("available %d, 1 open holds of 10", max-10)},
	})
	framework.Eventually(t, time.Until(expiresAt)+5*time.Second, func() error {
		if got := holdState(t, user); got != fmt.Sprintf("available %d, 0 open holds of 0", max) {
			return fmt.Errorf("5s after the hold's expiry, stored %s: the hold never came back", got)
		}
		return nil
	})
	if status, body := request(t, "GET", creditsURL(apiBase, "/api/credits", user), admin, ""); status != 200 || body != fmt.Sprintf(`{"credits":%d}`, max) {
		t.Fatalf("balance after the expiry: %d %s", status, body)
	}
}

// TestAttackCaptureOnLaggingReplica (issue 19 §2, attack 6): a hold made on replica A is
// captured, or released, at once on replica B, whose watch lags (here by 300 ms, more than the wait for
// the watch a refusal gets). B must not answer "not found" for a hold that exists:
// pkg/client takes a 404 as final, and the hold's credits would be neither spent nor
// returned before its expiry. Before the fix, "not found" was a cheap refusal: once B had
// spent its one read a second on the user (a consume refused at 402, or a capture of an
// unknown hold), it answered 404 from its lagging cache. A "not found" on capture or
// release is confirmed against the apiserver before it is answered.
func TestAttackCaptureOnLaggingReplica(t *testing.T) {
	proxy := newAPIServerProxy(t, false, 300*time.Millisecond)
	lagging, synced := proxiedReplica(t, proxy)
	if !synced(30 * time.Second) {
		t.Fatal("the lagging replica never synced")
	}
	admin := serviceAccountToken(t, "attack-lag-admin", "credits-admin")
	on := func(base, path, user string) string { return creditsURL(base, path, user) }
	counts := map[string]string{}
	for round := range 12 {
		user := fmt.Sprintf("user_AttackLag%d", round)
		if status, body := request(t, "POST", on(apiBase, "/api/credits", user), admin, `{"credits":5}`); status != 200 {
			t.Fatalf("round %d: set 5 on A: %d %s", round, status, body)
		}
		framework.Eventually(t, 10*time.Second, func() error {
			if _, body := request(t, "GET", on(lagging, "/api/credits", user), admin, ""); body != `{"credits":5}` {
				return fmt.Errorf("the lagging replica serves %s", body)
			}
			return nil
		})
		kind := []string{"budget unspent", "budget spent by a 402", "budget spent by a 404"}[round%3]
		switch round % 3 {
		case 1:
			if status, body := request(t, "POST", on(lagging, "/api/credits/consume", user), admin, `{"credits":100}`); status != 402 {
				t.Fatalf("round %d: consume 100 of 5 on B: %d %s", round, status, body)
			}
		case 2:
			if status, body := request(t, "POST", lagging+"/api/credits/reservations/rsv_00000000000000ff/capture?userId="+user, admin, ""); status != 404 {
				t.Fatalf("round %d: capture of an unknown hold on B: %d %s", round, status, body)
			}
		}
		status, hold, body := reserveAs(t, apiBase, admin, "?userId="+user, `{"credits":1}`)
		if status != 200 {
			t.Fatalf("round %d: reserve on A: %d %s", round, status, body)
		}
		action, left := "capture", int64(4)
		if round/3%2 == 1 {
			action, left = "release", 5
		}
		status, body = request(t, "POST", lagging+"/api/credits/reservations/"+hold.ReservationID+"/"+action+"?userId="+user, admin, "")
		if want := fmt.Sprintf(`{"success":true,"credits":%d}`, left); status != 200 || body != want {
			t.Errorf("round %d (%s): %s on B of the hold A just made: %d %s, want 200 %s", round, kind, action, status, body, want)
			counts[kind] += "✗"
		} else {
			counts[kind] += "✓"
		}
		if got, want := holdState(t, user), fmt.Sprintf("available %d, 0 open holds of 0", left); status == 200 && got != want {
			t.Errorf("round %d: stored %s after the %s, want %s", round, got, action, want)
		}
	}
	t.Logf("captures and releases on the lagging replica, by round kind: %v", counts)
}
