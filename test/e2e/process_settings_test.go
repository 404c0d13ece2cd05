package e2e

// Settings of the process around the API: its side endpoints (plain metrics, pprof, health
// probes), where Clerk keys come from, dev mode, and what it does with no cluster.

import (
	"fmt"
	"os"
	"regexp"
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

// TestDevAuth: with no Clerk key the manager refuses to start, unless --dev-auth, with
// which it prints a token for user_dev that the API accepts, writes included.
func TestDevAuth(t *testing.T) {
	t.Run("no key", func(t *testing.T) {
		m := newManager(t)
		out := exitOf(t, append(m.baseArgs(), "--namespace="+e2eNamespace), baseEnv())
		if !strings.Contains(out, "no Clerk key configured") {
			t.Errorf("the manager's output without a Clerk key:\n%s", out)
		}
	})
	t.Run("--dev-auth", func(t *testing.T) {
		m := newManager(t)
		m.start(t, append(m.baseArgs(), "--namespace="+e2eNamespace, "--dev-auth"), baseEnv())
		var match []string
		framework.Eventually(t, 5*time.Second, func() error { // the output reaches the pipe a moment after /readyz
			if match = regexp.MustCompile(`export TOKEN=(\S+)`).FindStringSubmatch(m.Logs()); match == nil {
				return fmt.Errorf("no token printed:\n%s", m.Logs())
			}
			return nil
		})
		expectHTTP(t, "set with the printed token", 200, `{"success":true,"credits":2}`)(httpDo(t, "POST", m.url("/api/credits"), match[1], `{"credits":2}`))
		if got := readBalance(t, suite.c, "user_dev"); got != 2 {
			t.Errorf("user_dev's balance is %d, want 2", got)
		}
	})
}

// TestLocalControlPlane: with no cluster configured the default --local-control-plane=never
// refuses to start, and auto goes on to start a local control plane (here it finds no
// binaries, which keeps the test from starting a second control plane); with a cluster
// in $KUBECONFIG, auto runs against that cluster, as make run does.
func TestLocalControlPlane(t *testing.T) {
	home := t.TempDir() // no ~/.kube/config; no KUBECONFIG, no in-cluster environment
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), clerkKey()}
	m := newManager(t)
	args := []string{"--api-bind-address=" + m.apiAddr, "--health-probe-bind-address=" + m.healthAddr, "--metrics-bind-address=0"}
	if out := exitOf(t, args, env); !strings.Contains(out, "no cluster configured (set --kubeconfig or KUBECONFIG, or use --local-control-plane=auto)") {
		t.Errorf("never, the default:\n%s", out)
	}
	auto := append(args, "--local-control-plane=auto", "--local-kubeconfig="+home+"/kubeconfig", "--namespace="+e2eNamespace)
	out := exitOf(t, auto, append(env, "KUBEBUILDER_ASSETS="+t.TempDir()))
	if !strings.Contains(out, "no cluster configured: starting a local control plane") {
		t.Errorf("auto:\n%s", out)
	}

	m.start(t, auto, append(env, "KUBECONFIG="+suite.kubeconfig))
	expectHTTP(t, "auto with KUBECONFIG set", 200, `{"credits":0}`)(httpDo(t, "GET", m.url("/api/credits"), userToken(t, "user_E2EKubeconfig1"), ""))
	if strings.Contains(m.Logs(), "starting a local control plane") {
		t.Errorf("auto started a local control plane with KUBECONFIG set:\n%s", m.Logs())
	}
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
	go func() { exited <- p.Cmd.Wait() }()
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
