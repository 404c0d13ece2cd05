package operator_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/gitread/usercredits-operator/test/framework"
)

// TestAPIServerOutage stops the real kube-apiserver under the running operator: writes get
// the contract's 500 body within the request timeout (never a hang), reads keep coming from
// the informer cache, and once the apiserver is back writes succeed again and persist.
func TestAPIServerOutage(t *testing.T) {
	apiserver := env.ControlPlane.GetAPIServer()
	user := "user_Outage1"
	tok := tokenFor(t, user)
	expectCall(t, "seed", "POST", tok, `{"credits":5}`, 200, `{"success":true,"credits":5}`)

	// With the operator's watches open, the apiserver's graceful shutdown outlasts
	// StopTimeout (set short in the suite) and envtest SIGKILLs it: a crash, the harsher outage.
	if err := apiserver.Stop(); err != nil {
		t.Logf("apiserver stop: %v (killed)", err)
	}
	restarted := false
	restart := func() {
		if !restarted {
			restarted = true
			start := time.Now()
			defer func() { t.Logf("apiserver restarted in %v", time.Since(start).Round(time.Millisecond)) }()
			if err := apiserver.Start(); err != nil {
				t.Fatalf("restarting the apiserver: %v", err)
			}
		}
	}
	t.Cleanup(restart)

	bound := requestTimeout + time.Second
	for name, c := range map[string]struct{ user, body, want string }{
		"update existing": {user, `{"credits":6}`, `{"error":"Error updating credits"}`},
		"create new":      {"user_OutageNew", `{"credits":1}`, `{"error":"Error updating credits"}`},
	} {
		start := time.Now()
		status, body := call(t, "POST", tokenFor(t, c.user), c.body)
		elapsed := time.Since(start)
		t.Logf("%s: answered %d in %v during the outage", name, status, elapsed.Round(time.Millisecond))
		if elapsed > bound {
			t.Errorf("%s: answered after %v, bound is %v", name, elapsed, bound)
		}
		if status != 500 || body != c.want {
			t.Errorf("%s: got %d %s, want 500 %s", name, status, body, c.want)
		}
	}
	start := time.Now()
	expectCall(t, "read from cache during the outage", "GET", tok, "", 200, `{"credits":5}`)
	if elapsed := time.Since(start); elapsed > bound {
		t.Errorf("GET during the outage took %v", elapsed)
	}

	restart()
	recoveryStart := time.Now()
	framework.Eventually(t, 30*time.Second, func() error {
		if status, body := call(t, "POST", tok, `{"credits":7}`); status != 200 {
			return fmt.Errorf("POST after restart: %d %s", status, body)
		}
		return nil
	})
	t.Logf("writes recovered %v after the apiserver restarted", time.Since(recoveryStart).Round(time.Millisecond))
	// The informer re-establishes its watch with backoff, so reads converge a little later.
	framework.Eventually(t, 30*time.Second, func() error {
		if _, body := call(t, "GET", tok, ""); body != `{"credits":7}` {
			return fmt.Errorf("GET after recovery: %s", body)
		}
		return nil
	})
	t.Logf("reads recovered %v after the apiserver restarted", time.Since(recoveryStart).Round(time.Millisecond))
	if got := storedBalanceOf(t, user); got != 7 {
		t.Fatalf("stored after recovery: %d, want 7", got)
	}
}
