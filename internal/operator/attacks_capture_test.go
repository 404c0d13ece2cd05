package operator_test

import (
	"fmt"
	"testing"
)

// holdState is what the apiserver stores for a user: the available balance, and the
// credits and count of the open holds.
func holdState(t *testing.T, user string) string {
	t.Helper()
	obj := statusOf(t, user)
	var held int64
	for _, h := range obj.Spec.Reservations {
		held += h.Credits
	}
	return fmt.Sprintf("available %d, %d open holds of %d", obj.Spec.Credits, len(obj.Spec.Reservations), held)
}

// TestAttackCaptureAnsweredAsReplay (issue 19 §2, attack 1): a capture of a hold that is
// already closed is a replay only when it is the same capture: the same amount, or the
// same Idempotency-Key. Any other capture of a captured hold is 409: before the fix, a
// capture of 0 followed by a capture of the whole hold (what pkg/client's Capture sends)
// was answered 200 with Idempotent-Replayed, and nothing was charged.
func TestAttackCaptureAnsweredAsReplay(t *testing.T) {
	user := "user_AttackCapture1"
	tok := tokenFor(t, user)
	expectCall(t, "seed", "POST", tok, `{"credits":10}`, 200, `{"success":true,"credits":10}`)

	// step is one request on a hold and the answer and stored state it must leave.
	type step struct {
		name, holdOf, body, key string
		status                  int
		want                    string
		replayed                bool
		stored                  string
	}
	holds := map[string]string{}
	reserve := func(name string, n int64, wantAvailable int64) {
		t.Helper()
		status, h, body := reserveAs(t, apiBase, tok, "", fmt.Sprintf(`{"credits":%d,"ttlSeconds":600}`, n))
		if status != 200 || h.Credits != wantAvailable {
			t.Fatalf("reserve %d for hold %s: %d %s, want %d available", n, name, status, body, wantAvailable)
		}
		holds[name] = h.ReservationID
	}
	run := func(steps []step) {
		t.Helper()
		for _, s := range steps {
			hdr := []string{}
			if s.key != "" {
				hdr = []string{"Idempotency-Key", s.key}
			}
			r := doRequest(t, "POST", holdURL(holds[s.holdOf], "capture"), tok, s.body, hdr...)
			replayed := r.header.Get("Idempotent-Replayed") == "true"
			if r.status != s.status || r.body != s.want || replayed != s.replayed {
				t.Errorf("%s: %d %s (Idempotent-Replayed %v); want %d %s (replayed %v)", s.name, r.status, r.body, replayed, s.status, s.want, s.replayed)
			}
			if got := holdState(t, user); got != s.stored {
				t.Errorf("%s: stored %s, want %s", s.name, got, s.stored)
			}
		}
	}

	// The attack: capture 0 (the work was free), then the Go client's Capture (no body:
	// the whole hold), with and without a fresh Idempotency-Key as pkg/client sends one.
	reserve("zero", 5, 5)
	run([]step{
		{"capture 0 of 5", "zero", `{"credits":0}`, "", 200, `{"success":true,"credits":10}`, false, "available 10, 0 open holds of 0"},
		{"capture all after capturing 0", "zero", "", "", 409, `{"error":"Reservation already captured"}`, false, "available 10, 0 open holds of 0"},
		{"capture all after capturing 0, with a new key", "zero", "", "attack-capture-go-client", 409, `{"error":"Reservation already captured"}`, false, "available 10, 0 open holds of 0"},
		{"capture 0 again: the same capture", "zero", `{"credits":0}`, "", 200, `{"success":true,"credits":10}`, true, "available 10, 0 open holds of 0"},
	})
	expectCall(t, "balance after the attack", "GET", tok, "", 200, `{"credits":10}`)

	// The reverse: the whole hold, then 0.
	reserve("all-then-zero", 2, 8)
	run([]step{
		{"capture all of 2", "all-then-zero", "", "", 200, `{"success":true,"credits":8}`, false, "available 8, 0 open holds of 0"},
		{"capture 0 after capturing all", "all-then-zero", `{"credits":0}`, "", 409, `{"error":"Reservation already captured"}`, false, "available 8, 0 open holds of 0"},
		{"capture all again: the same capture", "all-then-zero", "", "", 200, `{"success":true,"credits":8}`, true, "available 8, 0 open holds of 0"},
	})

	// The same explicit amount twice is a replay; another amount is not.
	reserve("five", 5, 3)
	run([]step{
		{"capture 5 of 5", "five", `{"credits":5}`, "", 200, `{"success":true,"credits":3}`, false, "available 3, 0 open holds of 0"},
		{"capture 5 again", "five", `{"credits":5}`, "", 200, `{"success":true,"credits":3}`, true, "available 3, 0 open holds of 0"},
	})
	reserve("three", 3, 0)
	run([]step{
		{"capture 2 of 3", "three", `{"credits":2}`, "", 200, `{"success":true,"credits":1}`, false, "available 1, 0 open holds of 0"},
		{"capture 1 after capturing 2", "three", `{"credits":1}`, "", 409, `{"error":"Reservation already captured"}`, false, "available 1, 0 open holds of 0"},
		{"capture 2 again", "three", `{"credits":2}`, "", 200, `{"success":true,"credits":1}`, true, "available 1, 0 open holds of 0"},
	})
	expectCall(t, "top up", "POST", tok, `{"credits":10}`, 200, `{"success":true,"credits":10}`)
	reserve("three-then-two", 4, 6)
	run([]step{
		{"capture 3 of 4", "three-then-two", `{"credits":3}`, "", 200, `{"success":true,"credits":7}`, false, "available 7, 0 open holds of 0"},
		{"capture 2 after capturing 3", "three-then-two", `{"credits":2}`, "", 409, `{"error":"Reservation already captured"}`, false, "available 7, 0 open holds of 0"},
	})

	// One Idempotency-Key names one capture: its retry replays, another amount under it is a
	// reused key, and the hold stays as the first capture left it.
	reserve("keyed", 3, 4)
	run([]step{
		{"keyed capture 1 of 3", "keyed", `{"credits":1}`, "attack-capture-key", 200, `{"success":true,"credits":6}`, false, "available 6, 0 open holds of 0"},
		{"keyed capture retried", "keyed", `{"credits":1}`, "attack-capture-key", 200, `{"success":true,"credits":6}`, true, "available 6, 0 open holds of 0"},
		{"same key, capture 2", "keyed", `{"credits":2}`, "attack-capture-key", 409, `{"error":"Idempotency-Key reused with a different request"}`, false, "available 6, 0 open holds of 0"},
		{"same key, capture all", "keyed", "", "attack-capture-key", 409, `{"error":"Idempotency-Key reused with a different request"}`, false, "available 6, 0 open holds of 0"},
	})
	expectCall(t, "final balance", "GET", tok, "", 200, `{"credits":6}`)
}
