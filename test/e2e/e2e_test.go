package e2e

// End to end: the built manager binary, run as a subprocess with only the RBAC that
// config/ ships (its ServiceAccount's token is its only credential), against a real
// kube-apiserver and etcd, driven through real HTTP and the real kubectl.

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitread/usercredits-operator/test/framework"
)

func TestEndToEnd(t *testing.T) {
	c := suite.c

	// The cert-manager overlay serves the API over HTTPS from the Certificate's Secret.
	checkCertManagerOverlay(t, c)

	// TestMain applied config/default (dry run, for real, dry run again); a GitOps resync
	// applies it once more and must be accepted as it stands.
	c.kubectl(t, suite.manifests, "apply", "--server-side", "-f", "-")

	// The operator's only credential: its ServiceAccount's token, bound by config/rbac
	// (suite.kubeconfig).
	bin, signer := suite.bin, suite.signer
	apiAddr, healthAddr, metricsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	args := []string{"--kubeconfig=" + suite.kubeconfig, "--namespace=" + e2eNamespace, "--leader-elect", "--allow-user-writes",
		"--api-bind-address=" + apiAddr, "--health-probe-bind-address=" + healthAddr, "--metrics-bind-address=" + metricsAddr}
	env := []string{"HOME=" + c.dir, "PATH=" + os.Getenv("PATH"), "CLERK_JWT_KEY=" + signer.PublicKeyPEM()}
	op := startOperator(t, bin, args, env, healthAddr)

	api := "http://" + apiAddr + "/api/credits"
	user := "user_E2E1"
	userToken, err := signer.SessionToken(user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expectHTTP(t, "clerk GET", 200, `{"credits":0}`)(httpDo(t, "GET", api, userToken, ""))
	expectHTTP(t, "clerk POST", 200, `{"success":true,"credits":20}`)(httpDo(t, "POST", api, userToken, `{"credits":20}`))
	expectHTTP(t, "clerk GET after POST", 200, `{"credits":20}`)(httpDo(t, "GET", api, userToken, ""))

	// The documented caller example is accepted by the server as it stands.
	c.kubectl(t, nil, "create", "namespace", "apps")
	c.kubectl(t, nil, "apply", "--server-side", "--dry-run=server", "-f", "docs/examples/readme-generator.yaml")
	c.bind(t, "readme-generator", "credits-consumer")
	worker := c.callerToken(t, "readme-generator")
	expectHTTP(t, "consumer consumes", 200, `{"success":true,"credits":19}`)(httpDo(t, "POST", api+"/consume?userId="+user, worker, ""))
	expectHTTP(t, "consumer grants", 403, `{"error":"Forbidden"}`)(httpDo(t, "POST", api+"/grant?userId="+user, worker, `{"credits":5}`, "Idempotency-Key", "x"))
	// A token for the apiserver's own audience is refused: it could be replayed there.
	expectHTTP(t, "apiserver-audience token", 401, `{"error":"Unauthorized"}`)(httpDo(t, "POST", api+"/consume?userId="+user, c.token(t, e2eNamespace, "readme-generator"), ""))

	// A worker holds 2 credits for a job (the consume verb is enough).
	status, body := httpDo(t, "POST", api+"/reserve?userId="+user, worker, `{"credits":2}`)
	if status != 200 || !strings.Contains(body, `"reservationId":"rsv_`) || !strings.HasSuffix(body, `"credits":17}`) {
		t.Fatalf("reserve: %d %s", status, body)
	}

	// The controller, with only the shipped RBAC, validated the object; kubectl shows it.
	framework.Eventually(t, 20*time.Second, func() error {
		out := c.kubectl(t, nil, "get", "uc", "-n", e2eNamespace)
		header := strings.Fields(strings.SplitN(out, "\n", 2)[0])
		if strings.Join(header, " ") != "NAME USER CREDITS RESERVED VALID UPDATED AGE" {
			return fmt.Errorf("printer columns: %v", header)
		}
		row := strings.Fields(framework.LineContaining(out, user))
		if len(row) < 7 || row[2] != "17" || row[3] != "2" || row[4] != "True" {
			return fmt.Errorf("row for %s: %v\n%s", user, row, out)
		}
		return nil
	})

	checkSecuredMetrics(t, c, metricsAddr)
	stopGracefully(t, c, op)
	logs := op.Logs()

	op = startOperator(t, bin, args, env, healthAddr)
	op = crashAndRestart(t, c, op, bin, args, env, healthAddr, api, user)
	logs += op.Logs()
	for name, token := range map[string]string{"Clerk": userToken, "ServiceAccount": worker} {
		signature := token[strings.LastIndexByte(token, '.')+1:]
		if strings.Contains(logs, signature) {
			t.Errorf("the operator logged a %s token", name)
		}
	}
}

func expectHTTP(t *testing.T, name string, status int, body string) func(int, string) {
	return func(gotStatus int, gotBody string) {
		t.Helper()
		if gotStatus != status || gotBody != body {
			t.Errorf("%s: got %d %s, want %d %s", name, gotStatus, gotBody, status, body)
		}
	}
}

// checkSecuredMetrics: anonymous scrapes are refused; a ServiceAccount bound to the shipped
// metrics-reader ClusterRole gets the operator's own metrics.
func checkSecuredMetrics(t *testing.T, c *cluster, addr string) {
	t.Helper()
	scraper := c.metricsReaderToken(t)
	// The metrics server is not part of readiness and may still be generating its
	// self-signed certificate on a busy machine: wait until it answers at all.
	framework.Eventually(t, 15*time.Second, func() error {
		if status, body := scrape(addr, ""); status == 0 {
			return fmt.Errorf("metrics endpoint not answering: %s", body)
		}
		return nil
	})
	if status, body := scrape(addr, ""); status != http.StatusUnauthorized {
		t.Errorf("anonymous scrape: %d %.200s, want 401", status, body)
	}
	status, body := scrape(addr, scraper)
	if status != 200 || !strings.Contains(body, "usercredits_api_requests_total") || !strings.Contains(body, "usercredits_operations_total") {
		t.Errorf("scrape with metrics-reader: %d %.200s, own metrics present: %v", status, body, strings.Contains(body, "usercredits_"))
	}
}

// crashAndRestart grants credits one by one with idempotency keys, SIGKILLs the operator
// in the middle, starts it again, and checks that every acknowledged grant survived; then
// it replays every key and checks the balance is exactly the sum of unique grants.
func crashAndRestart(t *testing.T, c *cluster, op *framework.Process, bin string, args, env []string, healthAddr, api, user string) *framework.Process {
	t.Helper()
	c.bind(t, "checkout", "credits-granter")
	granter := c.callerToken(t, "checkout")
	grantURL := api + "/grant?userId=" + user
	const before = 17 // available: 19, less the 2 held

	var acked, attempted int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 500; i++ {
			attempted = i + 1
			status, _ := httpDo(t, "POST", grantURL, granter, `{"credits":1}`, "Idempotency-Key", fmt.Sprint("crash-", i))
			if status != 200 {
				return // the operator is gone
			}
			acked++
		}
	}()
	time.Sleep(500 * time.Millisecond)
	if err := op.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = op.Wait()
	<-done
	if acked == 0 || acked == 500 {
		t.Fatalf("the kill did not land mid-run: %d of %d grants acknowledged", acked, attempted)
	}
	t.Logf("killed the operator after %d acknowledged grants (%d attempted)", acked, attempted)

	op = startOperator(t, bin, args, env, healthAddr)
	status, body := httpDo(t, "GET", api+"?userId="+user, granter, "")
	var balance int
	if _, err := fmt.Sscanf(body, `{"credits":%d}`, &balance); err != nil || status != 200 {
		// The granter may only grant; read as the admin would.
		balance = readBalance(t, c, user)
	}
	if balance < before+acked || balance > before+attempted {
		t.Fatalf("after restart the balance is %d: acknowledged grants lost (want %d..%d)", balance, before+acked, before+attempted)
	}
	for i := range attempted {
		status, _ := httpDo(t, "POST", grantURL, granter, `{"credits":1}`, "Idempotency-Key", fmt.Sprint("crash-", i))
		if status != 200 {
			t.Fatalf("replaying grant %d: %d", i, status)
		}
	}
	if got := readBalance(t, c, user); got != before+attempted {
		t.Fatalf("after replaying every key the balance is %d, want exactly %d", got, before+attempted)
	}
	return op
}

// readBalance reads spec.credits with kubectl, as an operator of the cluster would.
func readBalance(t *testing.T, c *cluster, user string) int {
	t.Helper()
	out := c.kubectl(t, nil, "get", "uc", "-n", e2eNamespace, "-o", "jsonpath={.items[?(@.spec.userID==\""+user+"\")].spec.credits}")
	var n int
	if _, err := fmt.Sscan(out, &n); err != nil {
		t.Fatalf("reading %s's balance: %q", user, out)
	}
	return n
}
