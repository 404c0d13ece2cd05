package e2e

// Settings of the process around the API: its side endpoints (plain metrics, pprof, health
// probes), where Clerk keys come from, dev mode, and what it does with no cluster.

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gitread/usercredits-operator/test/framework"
)

// TestSideEndpoints: --metrics-secure=false serves the metrics over plain HTTP to anyone,
// --pprof-bind-address serves net/http/pprof, and --health-probe-bind-address serves
// /healthz and /readyz (every launch waits on the latter).
func TestSideEndpoints(t *testing.T) {
	pprofAddr := freeAddr(t)
	m := launch(t, []string{"--metrics-secure=false", "--pprof-bind-address=" + pprofAddr})
	// One API request, so that the API's own metrics have a sample.
	expectHTTP(t, "GET", 200, `{"credits":0}`)(httpDo(t, "GET", m.url("/api/credits"), userToken(t, "user_E2ESide1"), ""))
	framework.Eventually(t, 15*time.Second, func() error {
		status, body := httpDo(t, "GET", "http://"+m.metricsAddr+"/metrics", "", "")
		if status != 200 || !strings.Contains(body, "usercredits_api_requests_total") {
			return fmt.Errorf("plain-HTTP, anonymous scrape: %d %.200s", status, body)
		}
		return nil
	})
	if status, body := httpDo(t, "GET", "http://"+pprofAddr+"/debug/pprof/goroutine?debug=1", "", ""); status != 200 || !strings.Contains(body, "goroutine profile:") {
		t.Errorf("pprof at %s: %d %.200s", pprofAddr, status, body)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, body := httpDo(t, "GET", "http://"+m.healthAddr+path, "", ""); status != 200 {
			t.Errorf("%s at %s: %d %s", path, m.healthAddr, status, body)
		}
	}
}

// TestClerkSecretKey: with CLERK_SECRET_KEY (and no CLERK_JWT_KEY) session tokens are
// checked against the JWKS fetched from the Backend API at --clerk-api-url.
func TestClerkSecretKey(t *testing.T) {
	clerk := framework.NewFakeClerk(suite.signer.JWKS())
	t.Cleanup(clerk.Close)
	m := launch(t, []string{"--clerk-api-url=" + clerk.Server.URL}, "CLERK_JWT_KEY=", "CLERK_SECRET_KEY="+clerk.SecretKey)
	expectHTTP(t, "GET with a session token", 200, `{"credits":0}`)(httpDo(t, "GET", m.url("/api/credits"), userToken(t, "user_E2EJwks1"), ""))
	if n := clerk.Fetches.Load(); n < 1 {
		t.Errorf("the fake Clerk Backend API served %d JWKS requests", n)
	}
}

// TestNoClerkKey: with no Clerk key the manager refuses to start and says how to fix it
// (a development key and token come from make run: makerun_test.go).
func TestNoClerkKey(t *testing.T) {
	m := newManager(t)
	out := exitOf(t, append(m.baseArgs(), "--namespace="+e2eNamespace), baseEnv())
	for _, want := range []string{"no Clerk key configured", "CLERK_JWT_KEY", "CLERK_SECRET_KEY", "make run"} {
		if !strings.Contains(out, want) {
			t.Errorf("the manager's output without a Clerk key lacks %q:\n%s", want, out)
		}
	}
}

// TestKubeconfigRules: with no cluster configured the manager refuses to start and says
// how to name one; with $KUBECONFIG (and no --kubeconfig) it serves that cluster. The local
// control plane of make run is hack/run-local's (makerun_test.go), not the manager's.
func TestKubeconfigRules(t *testing.T) {
	home := t.TempDir() // no ~/.kube/config; no KUBECONFIG, no in-cluster environment
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), clerkKey()}
	m := newManager(t)
	args := []string{"--api-bind-address=" + m.apiAddr, "--health-probe-bind-address=" + m.healthAddr, "--metrics-bind-address=0", "--namespace=" + e2eNamespace}
	if out := exitOf(t, args, env); !strings.Contains(out, "no cluster configured (set --kubeconfig or KUBECONFIG, or run in a Pod)") {
		t.Errorf("no cluster configured:\n%s", out)
	}
	m.start(t, args, append(env, "KUBECONFIG="+suite.kubeconfig))
	expectHTTP(t, "KUBECONFIG names the cluster", 200, `{"credits":0}`)(httpDo(t, "GET", m.url("/api/credits"), userToken(t, "user_E2EKubeconfig1"), ""))
}

// exitOf runs the binary, which must exit with an error within 30 s, and returns its
// output.
func exitOf(t *testing.T, args, env []string) string {
	t.Helper()
	p, err := framework.StartProcess(suite.bin, args, env)
	if err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.Wait() }()
	select {
	case err := <-exited:
		if err == nil {
			t.Errorf("%v exited 0, want an error:\n%s", args, p.Logs())
		}
	case <-time.After(30 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-exited
		t.Fatalf("%v still running after 30s:\n%s", args, p.Logs())
	}
	return p.Logs()
}

// TestRefusedAPISettings: values the API's limiter or CORS check would silently misapply
// stop the built binary at start, non-zero, with a message naming the flag (and, for an
// origin, the form browsers send); values as documented start it (every other test).
func TestRefusedAPISettings(t *testing.T) {
	for flagArg, want := range map[string]string{
		"--user-rate-limit=NaN":                           "--user-rate-limit must be 0 (off) or between 1e-09 and 1e+09 requests per second, not NaN",
		"--user-rate-limit=-1":                            "--user-rate-limit must be",
		"--service-account-rate-limit=+Inf":               "--service-account-rate-limit must be 0 (off) or between 1e-09 and 1e+09 requests per second, not +Inf",
		"--cors-allowed-origins=*":                        `--cors-allowed-origins "*": no browser sends * as its Origin`,
		"--cors-allowed-origins=https://app.example.com/": `--cors-allowed-origins "https://app.example.com/": no browser sends it as its Origin; browsers send it as https://app.example.com `,
		"--cors-allowed-origins=app.example.com":          `--cors-allowed-origins "app.example.com": no browser sends it as its Origin: want scheme://host[:port]`,
	} {
		t.Run(flagArg, func(t *testing.T) {
			m := newManager(t)
			out := exitOf(t, append(m.baseArgs(), "--namespace="+e2eNamespace, flagArg), baseEnv(clerkKey()))
			if !strings.Contains(out, want) {
				t.Errorf("%s: the manager's output lacks %q:\n%s", flagArg, want, out)
			}
		})
	}
}
