package e2e

// Settings whose effect the controller carries out: the low-balance threshold, the default
// hold lifetime, and the namespace served. Each test runs the only manager of its time.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gitread/usercredits-operator/test/framework"
)

// lowBalanceStatus is the status of user's LowBalance condition in namespace, read with
// kubectl ("" while there is none).
func lowBalanceStatus(t *testing.T, namespace, name string) string {
	t.Helper()
	return strings.TrimSpace(suite.c.kubectl(t, nil, "get", "uc", name, "-n", namespace,
		"-o", `jsonpath={.status.conditions[?(@.type=="LowBalance")].status}`))
}

// TestLowBalanceThreshold: with --low-balance-threshold=5 a balance of 3 turns the
// LowBalance condition True with a Warning Event and counts in the gauge; a grant above 5
// turns it False with a Normal Event BalanceRestored. The test has a namespace of its own,
// so that the gauge counts its user alone.
func TestLowBalanceThreshold(t *testing.T) {
	const ns = "e2e-lowbalance"
	suite.c.installNamespace(t, ns)
	user := "user_E2ELow1"
	m := launch(t, []string{"--namespace=" + ns, "--low-balance-threshold=5", "--allow-user-writes"})
	token := userToken(t, user)
	scraper := suite.c.metricsReaderToken(t)
	gauge := func() (float64, error) {
		status, body := scrape(m.metricsAddr, scraper)
		if status != 200 {
			return 0, fmt.Errorf("scrape: %d %.200s", status, body)
		}
		return metricValue(body, "usercredits_low_balance_users")
	}
	// state waits for the condition, the Events and the gauge to agree with want.
	state := func(step, condition string, gaugeWant float64, events ...[2]string) {
		t.Helper()
		framework.Eventually(t, 20*time.Second, func() error {
			name := objectName(t, ns, user)
			if name == "" {
				return fmt.Errorf("%s: no object for %s in %s", step, user, ns)
			}
			if got := lowBalanceStatus(t, ns, name); got != condition {
				return fmt.Errorf("%s: LowBalance condition %q, want %q", step, got, condition)
			}
			evs := eventsAbout(t, ns, name)
			for _, e := range events {
				if !hasEvent(evs, e[0], e[1]) {
					return fmt.Errorf("%s: no %s Event %s on %s (%d Events)", step, e[0], e[1], name, len(evs))
				}
			}
			if got, err := gauge(); err != nil || got != gaugeWant {
				return fmt.Errorf("%s: usercredits_low_balance_users %v (%v), want %v", step, got, err, gaugeWant)
			}
			return nil
		})
	}

	expectHTTP(t, "set 10", 200, `{"success":true,"credits":10}`)(httpDo(t, "POST", m.url("/api/credits"), token, `{"credits":10}`))
	state("at 10", "False", 0)
	expectHTTP(t, "set 3", 200, `{"success":true,"credits":3}`)(httpDo(t, "POST", m.url("/api/credits"), token, `{"credits":3}`))
	state("at 3", "True", 1, [2]string{"Warning", "LowBalance"})
	granter := suite.c.caller(t, ns, "lowbalance-granter", "credits-granter")
	expectHTTP(t, "grant 10", 200, `{"success":true,"credits":13}`)(httpDo(t, "POST", m.url("/api/credits/grant?userId="+user), granter, `{"credits":10}`, "Idempotency-Key", "e2e-low-1"))
	state("after a grant to 13", "False", 0, [2]string{"Warning", "LowBalance"}, [2]string{"Normal", "BalanceRestored"})
}

// TestReservationTTL: with --reservation-ttl=3s a hold whose request names no ttlSeconds
// returns to the balance within the documented 5 s of its expiry, with a Normal Event
// ReservationExpired (at the default 15m it would still be held).
func TestReservationTTL(t *testing.T) {
	user := "user_E2ETTL1"
	m := launch(t, []string{"--reservation-ttl=3s", "--allow-user-writes"})
	token := userToken(t, user)
	expectHTTP(t, "set 10", 200, `{"success":true,"credits":10}`)(httpDo(t, "POST", m.url("/api/credits"), token, `{"credits":10}`))
	reserved := time.Now()
	status, body := httpDo(t, "POST", m.url("/api/credits/reserve"), token, `{"credits":4}`)
	if status != 200 || !strings.Contains(body, `"reservationId":"rsv_`) || !strings.HasSuffix(body, `"credits":6}`) {
		t.Fatalf("reserve: %d %s", status, body)
	}
	expectHTTP(t, "GET while held", 200, `{"credits":6}`)(httpDo(t, "GET", m.url("/api/credits"), token, ""))
	name := objectName(t, e2eNamespace, user)
	framework.Eventually(t, time.Until(reserved.Add(3*time.Second+5*time.Second)), func() error {
		if _, body := httpDo(t, "GET", m.url("/api/credits"), token, ""); body != `{"credits":10}` {
			return fmt.Errorf("GET %s, want the hold back: {\"credits\":10}", body)
		}
		if holds := suite.c.kubectl(t, nil, "get", "uc", name, "-n", e2eNamespace, "-o", "jsonpath={.spec.reservations}"); strings.TrimSpace(holds) != "" {
			return fmt.Errorf("the object still holds %s", holds)
		}
		return nil
	})
	t.Logf("the hold returned %v after the reserve", time.Since(reserved).Round(10*time.Millisecond))
	framework.Eventually(t, 10*time.Second, func() error {
		if !hasEvent(eventsAbout(t, e2eNamespace, name), "Normal", "ReservationExpired") {
			return fmt.Errorf("no Normal Event ReservationExpired on %s", name)
		}
		return nil
	})
}

// TestNamespaceSetting: the manager serves $POD_NAMESPACE when --namespace is not given,
// and --namespace when it is (it wins over POD_NAMESPACE).
func TestNamespaceSetting(t *testing.T) {
	const podNS = "e2e-podns"
	suite.c.installNamespace(t, podNS)
	for _, tc := range []struct {
		name, user, flag, want, other string
	}{
		{"POD_NAMESPACE", "user_E2ENS1", "", podNS, e2eNamespace},
		{"--namespace over POD_NAMESPACE", "user_E2ENS2", "--namespace=" + e2eNamespace, e2eNamespace, podNS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newManager(t)
			args := append(m.baseArgs(), "--allow-user-writes")
			if tc.flag != "" {
				args = append(args, tc.flag)
			}
			m.start(t, args, baseEnv(clerkKey(), "POD_NAMESPACE="+podNS))
			expectHTTP(t, "set 4", 200, `{"success":true,"credits":4}`)(httpDo(t, "POST", m.url("/api/credits"), userToken(t, tc.user), `{"credits":4}`))
			if objectName(t, tc.want, tc.user) == "" {
				t.Errorf("no UserCredits of %s in %s", tc.user, tc.want)
			}
			if name := objectName(t, tc.other, tc.user); name != "" {
				t.Errorf("%s's object %s is in %s", tc.user, name, tc.other)
			}
		})
	}
}

// TestControllerWorkers: --controller-workers=3 is how many objects the controller judges
// at once, as its own metric says (8 without the flag), and with them it writes the status
// of every object a person applied, from outside the API, without one.
func TestControllerWorkers(t *testing.T) {
	const ns, n = "e2e-workers", 24
	suite.c.installNamespace(t, ns)
	var manifests strings.Builder
	for i := range n {
		fmt.Fprintf(&manifests, "---\napiVersion: credits.gitread.dev/v1alpha1\nkind: UserCredits\nmetadata:\n  name: workers-%02d\n  namespace: %s\n"+
			"spec:\n  userID: user_E2EWorkers%02d\n  credits: %d\n", i, ns, i, i+1)
	}
	suite.c.kubectl(t, []byte(manifests.String()), "apply", "-f", "-")
	m := launch(t, []string{"--namespace=" + ns, "--controller-workers=3"})
	scraper := suite.c.metricsReaderToken(t)
	const workers = `controller_runtime_max_concurrent_reconciles{controller="usercredits"}`
	framework.Eventually(t, 20*time.Second, func() error {
		status, body := scrape(m.metricsAddr, scraper)
		if status != 200 {
			return fmt.Errorf("scrape: %d %.200s", status, body)
		}
		if got, err := metricValue(body, workers); err != nil || got != 3 {
			return fmt.Errorf("%s = %v (%v), want 3", workers, got, err)
		}
		return nil
	})
	framework.Eventually(t, 30*time.Second, func() error {
		out := suite.c.kubectl(t, nil, "get", "uc", "-n", ns, "-o",
			`jsonpath={range .items[*]}{.status.conditions[?(@.type=="Valid")].status}/{.status.credits}/{.spec.credits} {end}`)
		valid := 0
		for _, f := range strings.Fields(out) {
			if p := strings.Split(f, "/"); len(p) == 3 && p[0] == "True" && p[1] == p[2] {
				valid++
			}
		}
		if valid != n {
			return fmt.Errorf("%d of %d objects have a Valid status for their balance: %s", valid, n, out)
		}
		return nil
	})
}
