package operator_test

// Attacks on issue 20's CreditGrant: exactly once through what a GitOps tool does.

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/test/framework"
)

var errNoCondition = errors.New("no Applied condition yet")

// TestAttack20CreditGrantRecreatedForAnotherUser: a commit edits a CreditGrant's
// spec.userID (a typo fixed); the sync fails (spec is immutable) and is forced through
// (Argo CD Replace=true with Force=true: delete, create). docs/gitops.md: "deletes and
// re-creates the object, which is then refused NameReused; nothing is granted twice either
// way". The grant key creditgrant:<name> lives in the old user's ledger only, so the
// re-created CreditGrant is granted again, to the new user: one CreditGrant, 2x the credits.
func TestAttack20CreditGrantRecreatedForAnotherUser(t *testing.T) {
	first := grantManifest{name: "a20-moved", user: "user_A20CGa", credits: 25, reason: "launch promo"}
	first.apply(t, "argocd-controller")
	waitApplied(t, first.name, applied, creditsv1alpha1.ReasonGranted)

	deleteGrant(t, first.name) // Replace=true, Force=true: delete ...
	moved := first
	moved.user = "user_A20CGb"
	moved.apply(t, "argocd-controller") // ... and create, with the edited spec
	framework.Eventually(t, 10*time.Second, func() error {
		if meta.FindStatusCondition(creditGrant(t, moved.name).Status.Conditions, creditsv1alpha1.ConditionApplied) == nil {
			return errNoCondition
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	c := meta.FindStatusCondition(creditGrant(t, moved.name).Status.Conditions, creditsv1alpha1.ConditionApplied)
	if a, b := balanceOf(t, first.user), balanceOf(t, moved.user); c.Status == metav1.ConditionTrue || b != `{"credits":0}` {
		t.Fatalf("CreditGrant %s re-created for %s: Applied=%s %s (%s); balances %s %s, %s %s: granted twice",
			moved.name, moved.user, c.Status, c.Reason, c.Message, first.user, a, moved.user, b)
	}
}

// TestAttack20CreditGrantUntilYear10000InUTC: spec.expiresAt "9999-12-31T23:59:59-23:59" is a
// valid date-time for the CRD, and in year 10000 in UTC. The lot cannot be stored (metav1.Time
// writes "10000-...", which the apiserver refuses), so the grant can never be applied; its
// status must say so for good (Invalid), not "Retrying" forever with the apiserver blamed.
func TestAttack20CreditGrantUntilYear10000InUTC(t *testing.T) {
	// Written as in Git: the text itself, which a typed client would turn into UTC first.
	cg := grantManifest{name: "a20-year10000", user: "user_A20CGy", credits: 5}
	path := filepath.Join(t.TempDir(), "cg.yaml")
	manifest := cg.yaml() + "  expiresAt: \"9999-12-31T23:59:59-23:59\"\n"
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "apply", "--server-side", "-f", path)
	framework.Eventually(t, 10*time.Second, func() error {
		if meta.FindStatusCondition(creditGrant(t, cg.name).Status.Conditions, creditsv1alpha1.ConditionApplied) == nil {
			return errNoCondition
		}
		return nil
	})
	c := meta.FindStatusCondition(creditGrant(t, cg.name).Status.Conditions, creditsv1alpha1.ConditionApplied)
	if c.Reason == creditsv1alpha1.ReasonRetrying {
		t.Fatalf("a CreditGrant that can never be stored: Applied=%s %s (%s), retried forever", c.Status, c.Reason, c.Message)
	}
}
