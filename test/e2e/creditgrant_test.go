package e2e

// CreditGrants through the built binary with the shipped RBAC (issue 20 §2): the manager
// applies one with nothing but its ServiceAccount's permissions, kubectl shows it, and only
// the admin caller role may create one.

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gitread/usercredits-operator/test/framework"
)

func TestCreditGrantWithShippedRBAC(t *testing.T) {
	c := suite.c
	c.kubectl(t, nil, "wait", "--for=condition=Established", "crd/creditgrants.credits.gitread.dev", "--timeout=30s")
	m := launch(t, nil)

	const user, name = "user_E2ECG1", "e2e-welcome.2026"
	expires := time.Now().Add(90 * 24 * time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
	manifest := fmt.Sprintf(`apiVersion: credits.gitread.dev/v1alpha1
kind: CreditGrant
metadata:
  name: %s
  namespace: %s
spec:
  userID: %s
  credits: 25
  expiresAt: %q
  reason: welcome bonus
`, name, e2eNamespace, user, expires)
	c.kubectl(t, []byte(manifest), "apply", "--server-side", "-f", "-")

	// kubectl get cg: the columns, and the manager's status write (creditgrants/status).
	framework.Eventually(t, 20*time.Second, func() error {
		out := c.kubectl(t, nil, "get", "cg", "-n", e2eNamespace)
		header := strings.Fields(strings.SplitN(out, "\n", 2)[0])
		if strings.Join(header, " ") != "NAME USER CREDITS EXPIRES APPLIED AGE" {
			return fmt.Errorf("printer columns: %v", header)
		}
		row := strings.Fields(framework.LineContaining(out, name))
		if len(row) != 6 || row[1] != user || row[2] != "25" || row[3] != expires || row[4] != "True" {
			return fmt.Errorf("row for %s: %v\n%s", name, row, out)
		}
		return nil
	})
	lotID := c.kubectl(t, nil, "get", "cg", name, "-n", e2eNamespace, "-o", "jsonpath={.status.lotID}")

	// The user sees the lot through the API (usercredits create/patch).
	status, body := httpDo(t, "GET", m.url("/api/credits/grants"), userToken(t, user), "")
	var got struct {
		Grants []struct {
			ID, Source, Reference, Reason string
			Credits, Remaining            int64
			ExpiresAt                     *string
		}
	}
	if err := json.Unmarshal([]byte(body), &got); status != 200 || err != nil || len(got.Grants) != 1 {
		t.Fatalf("GET /api/credits/grants: %d %s", status, body)
	}
	if g := got.Grants[0]; g.ID != lotID || g.Source != "gitops" || g.Reference != name || g.Credits != 25 || g.Remaining != 25 ||
		g.Reason != "welcome bonus" || g.ExpiresAt == nil || *g.ExpiresAt != expires {
		t.Fatalf("the user's lot: %s; want lot %s of 25 from CreditGrant %s", body, lotID, name)
	}
	// Its Events (events create).
	framework.Eventually(t, 10*time.Second, func() error {
		if !hasEvent(eventsAbout(t, e2eNamespace, name), "Normal", "CreditsGranted") {
			return fmt.Errorf("no Normal Event CreditsGranted on CreditGrant %s", name)
		}
		if !hasEvent(eventsAbout(t, e2eNamespace, objectName(t, e2eNamespace, user)), "Normal", "CreditsGranted") {
			return fmt.Errorf("no Normal Event CreditsGranted on %s's UserCredits", user)
		}
		return nil
	})

	// Who may create a CreditGrant may mint credits: only the admin caller role, not the
	// granter or the consumer, nor the manager itself; view may read them.
	rbac := bundleCluster{kubeconfig: c.adminKubeconfig, clientset: c.clientset}
	sa := func(name string) string { return "system:serviceaccount:" + e2eNamespace + ":" + name }
	for role, may := range map[string]bool{"credits-admin": true, "credits-granter": false, "credits-consumer": false, "credits-viewer": false} {
		c.bind(t, "cg-"+role, role)
		if got := rbac.canI(t, sa("cg-"+role), "create", "creditgrants.credits.gitread.dev", "-n", e2eNamespace); got != may {
			t.Errorf("a ServiceAccount bound to %s may create CreditGrants: %v, want %v", role, got, may)
		}
	}
	if rbac.canI(t, sa("usercredits-controller-manager"), "create", "creditgrants.credits.gitread.dev", "-n", e2eNamespace) {
		t.Error("the manager's ServiceAccount may create CreditGrants")
	}
	c.kubectl(t, nil, "-n", e2eNamespace, "create", "rolebinding", "cg-viewer", "--clusterrole=usercredits-view", "--user=cg-viewer@example.com")
	if !rbac.canI(t, "cg-viewer@example.com", "list", "creditgrants.credits.gitread.dev", "-n", e2eNamespace) ||
		rbac.canI(t, "cg-viewer@example.com", "create", "creditgrants.credits.gitread.dev", "-n", e2eNamespace) {
		t.Error("usercredits-view should read CreditGrants and never create one")
	}
	// A real create, not only the review: refused.
	other := strings.ReplaceAll(manifest, name, "e2e-granter-try")
	if out, err := c.run([]byte(other), "apply", "--server-side", "-f", "-", "--as", sa("cg-credits-granter")); err == nil || !strings.Contains(out, "forbidden") {
		t.Errorf("a granter's CreditGrant: %v %s", err, out)
	}

	// Void through the API (verb grant): the lot's remainder goes, a retry with its
	// Idempotency-Key replays, another void of the emptied lot is 409, and a consumer may not.
	voidURL := m.url("/api/credits/grants/" + lotID + "/void?userId=" + user)
	consumer := c.caller(t, e2eNamespace, "cg-void-consumer", "credits-consumer")
	expectHTTP(t, "void by a consumer", 403, `{"error":"Forbidden"}`)(httpDo(t, "POST", voidURL, consumer, "", "Idempotency-Key", "e2e-void-0"))
	granter := c.caller(t, e2eNamespace, "cg-void-granter", "credits-granter")
	void := func(key string) (int, string) { return httpDo(t, "POST", voidURL, granter, "", "Idempotency-Key", key) }
	expectHTTP(t, "void", 200, `{"success":true,"credits":0}`)(void("e2e-void-1"))
	expectHTTP(t, "void retried", 200, `{"success":true,"credits":0}`)(void("e2e-void-1"))
	expectHTTP(t, "void again", 409, `{"error":"Grant has nothing left"}`)(void("e2e-void-2"))
}
