package operator_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/metrics"
	"github.com/gitread/usercredits-operator/internal/operator/options"
	"github.com/gitread/usercredits-operator/test/framework"
)

var callerRolesOnce sync.Once

// applyCallerRoles installs the example ClusterRoles shipped in config/rbac.
func applyCallerRoles(t *testing.T) {
	t.Helper()
	callerRolesOnce.Do(func() {
		f, err := os.Open(filepath.Join(framework.RepoRoot(), "config", "rbac", "caller_roles.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		dec := yaml.NewYAMLOrJSONDecoder(f, 4096)
		for {
			role := &rbacv1.ClusterRole{}
			if err := dec.Decode(role); err != nil {
				break
			}
			if err := k8sClient.Create(context.Background(), role); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
		}
	})
}

// serviceAccountToken creates ServiceAccount name, binds clusterRole to it in the test
// namespace (none when empty) and mints a token for it with TokenRequest, bound to the
// API's audience as a projected token volume would be.
func serviceAccountToken(t *testing.T, name, clusterRole string) string {
	t.Helper()
	return serviceAccountTokenFor(t, name, clusterRole, auth.DefaultServiceAccountAudience)
}

// serviceAccountTokenFor is serviceAccountToken for the given audiences; none means the
// apiserver's own.
func serviceAccountTokenFor(t *testing.T, name, clusterRole string, audiences ...string) string {
	t.Helper()
	ctx := context.Background()
	applyCallerRoles(t)
	clientset, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	if clusterRole != "" {
		if err := framework.BindServiceAccount(ctx, clientset, testNamespace, name, framework.ClusterRole(clusterRole)); err != nil {
			t.Fatal(err)
		}
	}
	token, err := framework.ServiceAccountToken(ctx, clientset, testNamespace, name, audiences...)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func creditsURL(base, path, userID string) string {
	return base + path + "?userId=" + userID
}

func TestServiceAccountAuthorization(t *testing.T) {
	user := "user_Svc1"
	admin := serviceAccountToken(t, "svc-admin", "credits-admin")
	unbound := serviceAccountToken(t, "svc-unbound", "")
	consumer := serviceAccountToken(t, "svc-consumer", "credits-consumer")
	viewer := serviceAccountToken(t, "svc-viewer", "credits-viewer")
	get, set := creditsURL(apiBase, "/api/credits", user), creditsURL(apiBase, "/api/credits", user)
	consume, grant := creditsURL(apiBase, "/api/credits/consume", user), creditsURL(apiBase, "/api/credits/grant", user)

	cases := []struct {
		name, method, url, token, body, key string
		status                              int
		want                                string
	}{
		{"admin sets", "POST", set, admin, `{"credits":10}`, "", 200, `{"success":true,"credits":10}`},
		{"unbound reads", "GET", get, unbound, "", "", 403, `{"error":"Forbidden"}`},
		{"unbound consumes", "POST", consume, unbound, "", "", 403, `{"error":"Forbidden"}`},
		{"viewer reads", "GET", get, viewer, "", "", 200, `{"credits":10}`},
		{"viewer consumes", "POST", consume, viewer, "", "", 403, `{"error":"Forbidden"}`},
		{"consumer consumes", "POST", consume, consumer, `{"credits":3}`, "", 200, `{"success":true,"credits":7}`},
		{"consumer grants", "POST", grant, consumer, `{"credits":100}`, "pay-1", 403, `{"error":"Forbidden"}`},
		{"consumer sets", "POST", set, consumer, `{"credits":100}`, "", 403, `{"error":"Forbidden"}`},
		{"consumer overdraws", "POST", consume, consumer, `{"credits":8}`, "", 402, `{"error":"Insufficient credits","credits":7}`},
		{"admin grants", "POST", grant, admin, `{"credits":5}`, "pay-1", 200, `{"success":true,"credits":12}`},
		{"no userId", "GET", apiBase + "/api/credits", admin, "", "", 400, `{"error":"Missing userId"}`},
	}
	for _, c := range cases {
		var hdr []string
		if c.key != "" {
			hdr = []string{"Idempotency-Key", c.key}
		}
		if status, body := request(t, c.method, c.url, c.token, c.body, hdr...); status != c.status || body != c.want {
			t.Errorf("%s: got %d %s, want %d %s", c.name, status, body, c.status, c.want)
		}
	}
	// Set and grant leave Events on the user's object; consumes (too frequent) do not.
	framework.Eventually(t, 10*time.Second, func() error {
		var list eventsv1.EventList
		if err := k8sClient.List(context.Background(), &list, client.InNamespace(testNamespace)); err != nil {
			return err
		}
		reasons := map[string]int{}
		for _, e := range list.Items {
			if e.Regarding.Name == account.ObjectNameForUser(user) && e.Type == "Normal" {
				reasons[e.Reason]++
			}
		}
		if reasons["CreditsSet"] == 0 || reasons["CreditsGranted"] == 0 {
			return fmt.Errorf("events about %s: %v", user, reasons)
		}
		for reason := range reasons {
			if strings.Contains(strings.ToLower(reason), "consum") {
				return fmt.Errorf("a consume was recorded as an Event: %v", reasons)
			}
		}
		return nil
	})
	// A Clerk user may not name another user.
	if status, body := request(t, "GET", get, tokenFor(t, "user_Other"), ""); status != 403 || body != `{"error":"Forbidden"}` {
		t.Errorf("Clerk user naming another user: %d %s", status, body)
	}
}

// twoReplicas starts a second operator on the same control plane for the test's duration.
func twoReplicas(t *testing.T) [2]string {
	t.Helper()
	return [2]string{apiBase, extraReplica(t)}
}

// extraReplica starts another operator on the same control plane for the test's duration,
// configured as the suite's but for edit, and returns its API base URL.
func extraReplica(t *testing.T, edit ...func(*options.Options)) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r, err := startReplica(ctx, edit...)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := r.wait(); err != nil {
			t.Error(err)
		}
	})
	return r.base
}

// waitBalance waits until every replica serves want for user.
func waitBalance(t *testing.T, bases [2]string, token, user, want string) {
	t.Helper()
	framework.Eventually(t, 10*time.Second, func() error {
		for _, base := range bases {
			if _, body := request(t, "GET", creditsURL(base, "/api/credits", user), token, ""); body != want {
				return fmt.Errorf("%s serves %s, want %s", base, body, want)
			}
		}
		return nil
	})
}

// seedOnTwoReplicas starts a second replica, sets user's balance through the first with an
// admin ServiceAccount, and waits until both serve it.
func seedOnTwoReplicas(t *testing.T, serviceAccount, user string, balance int) ([2]string, string) {
	t.Helper()
	bases := twoReplicas(t)
	token := serviceAccountToken(t, serviceAccount, "credits-admin")
	request(t, "POST", creditsURL(bases[0], "/api/credits", user), token, fmt.Sprintf(`{"credits":%d}`, balance))
	waitBalance(t, bases, token, user, fmt.Sprintf(`{"credits":%d}`, balance))
	return bases, token
}

func TestConcurrentConsumesAcrossTwoReplicas(t *testing.T) {
	user := "user_Concurrent1"
	bases, token := seedOnTwoReplicas(t, "worker", user, 150)

	type outcome struct {
		status int
		body   string
	}
	insufficient := metrics.CreditOperations.WithLabelValues("consume", "insufficient")
	applied := metrics.CreditOperations.WithLabelValues("consume", "applied")
	insufficientBefore, appliedBefore := testutil.ToFloat64(insufficient), testutil.ToFloat64(applied)
	outcomes := make([]outcome, 200)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range outcomes {
		wg.Go(func() {
			status, body := request(t, "POST", creditsURL(bases[i%2], "/api/credits/consume", user), token, "")
			outcomes[i] = outcome{status, body}
		})
	}
	wg.Wait()
	t.Logf("200 concurrent consumes over 2 replicas took %v", time.Since(start).Round(time.Millisecond))

	counts := map[int]int{}
	remaining := map[string]bool{}
	for _, o := range outcomes {
		counts[o.status]++
		if o.status == 200 {
			if remaining[o.body] {
				t.Errorf("two consumes both left %s: a credit was spent twice", o.body)
			}
			remaining[o.body] = true
		}
	}
	if counts[200] != 150 || counts[402] != 50 || len(counts) != 2 {
		t.Fatalf("statuses %v, want exactly 150×200 and 50×402", counts)
	}
	if d := testutil.ToFloat64(insufficient) - insufficientBefore; d != 50 {
		t.Errorf("usercredits_operations_total{consume,insufficient} grew by %v, want 50", d)
	}
	if d := testutil.ToFloat64(applied) - appliedBefore; d != 150 {
		t.Errorf("usercredits_operations_total{consume,applied} grew by %v, want 150", d)
	}
	t.Logf("conflict retries so far: %v", testutil.ToFloat64(metrics.ConflictRetries))
	waitBalance(t, bases, token, user, `{"credits":0}`)
	if got := storedBalanceOf(t, user); got != 0 {
		t.Fatalf("stored balance %d, want 0", got)
	}
}

func TestConcurrentGrantsWithOneKeyApplyOnce(t *testing.T) {
	user := "user_Grant1"
	bases, token := seedOnTwoReplicas(t, "checkout", user, 1)

	bodies := make([]string, 50)
	var wg sync.WaitGroup
	for i := range bodies {
		wg.Go(func() {
			status, body := request(t, "POST", creditsURL(bases[i%2], "/api/credits/grant", user), token, `{"credits":100}`,
				"Idempotency-Key", "cs_test_a1b2c3")
			bodies[i] = fmt.Sprint(status, " ", body)
		})
	}
	wg.Wait()
	for i, b := range bodies {
		if b != `200 {"success":true,"credits":101}` {
			t.Errorf("grant %d answered %s", i, b)
		}
	}
	waitBalance(t, bases, token, user, `{"credits":101}`)
	// The same key with another amount is a conflict, and changes nothing.
	if status, body := request(t, "POST", creditsURL(bases[1], "/api/credits/grant", user), token, `{"credits":5}`,
		"Idempotency-Key", "cs_test_a1b2c3"); status != 409 {
		t.Fatalf("reused key, different body: %d %s", status, body)
	}
	waitBalance(t, bases, token, user, `{"credits":101}`)
}

func TestReplayedMixOfOperationsAddsUp(t *testing.T) {
	bases := twoReplicas(t)
	token := serviceAccountToken(t, "mixer", "credits-admin")
	user := "user_Mix1"
	ops := []struct {
		path, body string
		apply      func(int64) int64
	}{
		{"/api/credits", `{"credits":100}`, func(int64) int64 { return 100 }},
		{"/api/credits/consume", `{"credits":7}`, func(b int64) int64 { return b - 7 }},
		{"/api/credits/grant", `{"credits":50}`, func(b int64) int64 { return b + 50 }},
		{"/api/credits/consume", ``, func(b int64) int64 { return b - 1 }},
		{"/api/credits/consume", `{"credits":20}`, func(b int64) int64 { return b - 20 }},
		{"/api/credits", `{"credits":30}`, func(int64) int64 { return 30 }},
		{"/api/credits/grant", `{"credits":5}`, func(b int64) int64 { return b + 5 }},
		{"/api/credits/consume", `{"credits":4}`, func(b int64) int64 { return b - 4 }},
	}
	var want int64
	for i, op := range ops {
		want = op.apply(want)
		key := fmt.Sprintf("mix-%d", i)
		// Each operation is sent three times at once over both replicas, as a retrying client would.
		answers := make([]string, 3)
		var wg sync.WaitGroup
		for j := range answers {
			wg.Go(func() {
				status, body := request(t, "POST", creditsURL(bases[j%2], op.path, user), token, op.body, "Idempotency-Key", key)
				answers[j] = fmt.Sprint(status, " ", body)
			})
		}
		wg.Wait()
		expected := fmt.Sprintf(`200 {"success":true,"credits":%d}`, want)
		for j, a := range answers {
			if a != expected {
				t.Fatalf("op %d (%s %s) copy %d answered %s, want %s", i, op.path, op.body, j, a, expected)
			}
		}
	}
	waitBalance(t, bases, token, user, fmt.Sprintf(`{"credits":%d}`, want))
	if want != 31 {
		t.Fatalf("arithmetic of the unique operations is %d; the table expects 31", want)
	}
}
