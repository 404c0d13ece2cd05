package operator_test

import (
	"fmt"
	"testing"

	"github.com/gitread/usercredits-operator/internal/account"
)

// TestAttackKeyWindowOfKeyedConsumes (issue 19 §2, attack 7) documents the server's real
// window for the Idempotency-Key of anything but a grant, which docs/go-client.md has to
// state instead of "a retry can never apply a change twice": a user's keys of set, consume,
// reserve, capture and release share one ledger of the last 100 (and 24 h). Within it a
// retry is a replay; the 101st keyed operation after it pushes the key out, and the same
// retry then applies again: a second consume, or a second hold with another ID.
func TestAttackKeyWindowOfKeyedConsumes(t *testing.T) {
	user := "user_AttackKeyWindow1"
	tok := tokenFor(t, user)
	expectCall(t, "seed", "POST", tok, `{"credits":1000}`, 200, `{"success":true,"credits":1000}`)
	consume := func(key string) response {
		t.Helper()
		return doRequest(t, "POST", apiURL+"/consume", tok, `{"credits":1}`, "Idempotency-Key", key)
	}
	expect := func(what string, r response, want string, replayed bool) {
		t.Helper()
		if got := r.header.Get("Idempotent-Replayed") == "true"; r.status != 200 || r.body != want || got != replayed {
			t.Fatalf("%s: %d %s (replayed %v), want 200 %s (replayed %v)", what, r.status, r.body, got, want, replayed)
		}
	}
	expect("keyed consume", consume("window-0"), `{"success":true,"credits":999}`, false)
	for i := 1; i < account.RequestKeysMaxEntries; i++ {
		expect("another keyed consume", consume(fmt.Sprintf("window-%d", i)), fmt.Sprintf(`{"success":true,"credits":%d}`, 999-i), false)
	}
	// 100 keys: the first is still known.
	expect("retry after 99 newer keys", consume("window-0"), `{"success":true,"credits":999}`, true)
	expect("the 101st keyed consume", consume("window-100"), `{"success":true,"credits":899}`, false)
	// It pushed the first key out: its retry is a new consume.
	expect("retry after 100 newer keys", consume("window-0"), `{"success":true,"credits":898}`, false)
	if got := storedBalanceOf(t, user); got != 898 {
		t.Fatalf("stored %d, want 898: 102 consumes applied", got)
	}

	// A keyed reserve shares that ledger: after 100 newer keyed consumes, its retry holds again.
	status, first, body := reserveAs(t, apiBase, tok, "", `{"credits":1}`, "Idempotency-Key", "window-reserve")
	if status != 200 || first.Credits != 897 {
		t.Fatalf("keyed reserve: %d %s", status, body)
	}
	for i := range account.RequestKeysMaxEntries {
		expect("keyed consume after the reserve", consume(fmt.Sprintf("window-after-reserve-%d", i)), fmt.Sprintf(`{"success":true,"credits":%d}`, 896-i), false)
	}
	status, again, body := reserveAs(t, apiBase, tok, "", `{"credits":1}`, "Idempotency-Key", "window-reserve")
	if status != 200 || again.ReservationID == first.ReservationID || again.Credits != 796 {
		t.Fatalf("keyed reserve retried after 100 newer keys: %d %s; want a second hold (%s was the first), 796 available", status, body, first.ReservationID)
	}
	if got := len(statusOf(t, user).Spec.Reservations); got != 2 {
		t.Fatalf("%d open holds, want 2: the retried reserve held again", got)
	}
}
