package operator_test

// Helpers of the CreditGrant tests: manifests applied as a GitOps tool applies them, the
// Applied condition, the user's lots as GET /api/credits/grants shows them, and Events.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/test/framework"
)

// grantManifest is a CreditGrant as it would be committed to Git.
type grantManifest struct {
	name, user string
	credits    int64
	expiresAt  time.Time // zero: never
	priority   int32     // 0: unset (the default, 50)
	reason     string
}

func (m grantManifest) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: credits.gitread.dev/v1alpha1\nkind: CreditGrant\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n", m.name, testNamespace)
	fmt.Fprintf(&b, "  userID: %s\n  credits: %d\n", m.user, m.credits)
	if !m.expiresAt.IsZero() {
		fmt.Fprintf(&b, "  expiresAt: %q\n", m.expiresAt.UTC().Format(time.RFC3339))
	}
	if m.priority != 0 {
		fmt.Fprintf(&b, "  priority: %d\n", m.priority)
	}
	if m.reason != "" {
		fmt.Fprintf(&b, "  reason: %q\n", m.reason)
	}
	return b.String()
}

// apply applies m with kubectl apply --server-side under fieldManager, as Argo CD and Flux
// apply a manifest on every sync, and returns what kubectl printed.
func (m grantManifest) apply(t *testing.T, fieldManager string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), m.name+".yaml")
	if err := os.WriteFile(path, []byte(m.yaml()), 0o600); err != nil {
		t.Fatal(err)
	}
	return kubectl(t, "apply", "--server-side", "--field-manager="+fieldManager, "-f", path)
}

// object is m as a typed object, for k8sClient.
func (m grantManifest) object() *creditsv1alpha1.CreditGrant {
	cg := &creditsv1alpha1.CreditGrant{ObjectMeta: metav1.ObjectMeta{Name: m.name, Namespace: testNamespace},
		Spec: creditsv1alpha1.CreditGrantSpec{UserID: m.user, Credits: m.credits, Reason: m.reason}}
	if !m.expiresAt.IsZero() {
		cg.Spec.ExpiresAt = &metav1.Time{Time: m.expiresAt}
	}
	if m.priority != 0 {
		cg.Spec.Priority = &m.priority
	}
	return cg
}

// creditGrant reads CreditGrant name from the apiserver.
func creditGrant(t *testing.T, name string) *creditsv1alpha1.CreditGrant {
	t.Helper()
	cg := &creditsv1alpha1.CreditGrant{}
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: testNamespace, Name: name}, cg); err != nil {
		t.Fatalf("reading CreditGrant %s: %v", name, err)
	}
	return cg
}

// waitApplied waits until CreditGrant name's Applied condition has status and reason (and,
// when True, a lot), and returns the CreditGrant.
func waitApplied(t *testing.T, name string, status metav1.ConditionStatus, reason string) *creditsv1alpha1.CreditGrant {
	t.Helper()
	var cg *creditsv1alpha1.CreditGrant
	framework.Eventually(t, 15*time.Second, func() error {
		cg = creditGrant(t, name)
		c := meta.FindStatusCondition(cg.Status.Conditions, creditsv1alpha1.ConditionApplied)
		switch {
		case c == nil:
			return fmt.Errorf("CreditGrant %s has no Applied condition", name)
		case c.Status != status || c.Reason != reason:
			return fmt.Errorf("CreditGrant %s: Applied=%s %s (%s), want %s %s", name, c.Status, c.Reason, c.Message, status, reason)
		case status == metav1.ConditionTrue && (cg.Status.LotID == "" || cg.Status.AppliedAt == nil):
			return fmt.Errorf("CreditGrant %s is applied without a lot or a time: %+v", name, cg.Status)
		}
		return nil
	})
	return cg
}

// lotView is one entry of GET /api/credits/grants.
type lotView struct {
	ID        string `json:"id"`
	Credits   int64  `json:"credits"`
	Remaining int64  `json:"remaining"`
	ExpiresAt string `json:"expiresAt"` // "" for null: never
	Priority  int32  `json:"priority"`
	Source    string `json:"source"`
	Reference string `json:"reference"`
	Reason    string `json:"reason"`
}

// lotsOf is user's lots with credits left, as the user reads them through the API.
func lotsOf(t *testing.T, user string) []lotView {
	t.Helper()
	status, body := request(t, "GET", apiBase+"/api/credits/grants", tokenFor(t, user), "")
	var got struct {
		Grants []lotView `json:"grants"`
	}
	if err := json.Unmarshal([]byte(body), &got); status != 200 || err != nil {
		t.Fatalf("GET /api/credits/grants for %s: %d %s", user, status, body)
	}
	return got.Grants
}

// balanceOf is user's balance as the user reads it through the API.
func balanceOf(t *testing.T, user string) string {
	t.Helper()
	_, body := call(t, "GET", tokenFor(t, user), "")
	return body
}

// expectOneGitOpsLot checks that user's only lot is the one CreditGrant cg made, whole.
func expectOneGitOpsLot(t *testing.T, user string, cg *creditsv1alpha1.CreditGrant) lotView {
	t.Helper()
	lots := lotsOf(t, user)
	if len(lots) != 1 {
		t.Fatalf("%s has %d lots, want the one of CreditGrant %s: %+v", user, len(lots), cg.Name, lots)
	}
	l := lots[0]
	if l.ID != cg.Status.LotID || l.Source != account.SourceGitOps || l.Reference != cg.Name || l.Credits != cg.Spec.Credits || l.Remaining != cg.Spec.Credits {
		t.Fatalf("%s's lot %+v; want lot %s of %d credits, source gitops, reference %s", user, l, cg.Status.LotID, cg.Spec.Credits, cg.Name)
	}
	if want := fmt.Sprintf(`{"credits":%d}`, cg.Spec.Credits); balanceOf(t, user) != want {
		t.Fatalf("%s's balance is %s, want %s", user, balanceOf(t, user), want)
	}
	return l
}

// grantEvents are the notes of the Events of reason about CreditGrant name or, when onUser
// is set, about a UserCredits (the user's) naming CreditGrant name as the related object.
func grantEvents(t *testing.T, name, reason string, onUser bool) []string {
	t.Helper()
	var list eventsv1.EventList
	if err := k8sClient.List(context.Background(), &list, client.InNamespace(testNamespace)); err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, e := range list.Items {
		about := e.Regarding.Kind == "CreditGrant" && e.Regarding.Name == name
		if onUser {
			about = e.Regarding.Kind == "UserCredits" && e.Related != nil && e.Related.Kind == "CreditGrant" && e.Related.Name == name
		}
		if about && e.Reason == reason {
			notes = append(notes, e.Type+": "+e.Note)
		}
	}
	return notes
}

// waitEvents waits until exactly want Events of reason (grantEvents) exist, each note
// containing every one of parts.
func waitEvents(t *testing.T, name, reason string, onUser bool, want int, parts ...string) {
	t.Helper()
	framework.Eventually(t, 10*time.Second, func() error {
		notes := grantEvents(t, name, reason, onUser)
		if len(notes) != want {
			return fmt.Errorf("%d Events %s about CreditGrant %s (on the user's object: %v): %q, want %d", len(notes), reason, name, onUser, notes, want)
		}
		for _, n := range notes {
			for _, p := range parts {
				if !strings.Contains(n, p) {
					return fmt.Errorf("Event %q lacks %q", n, p)
				}
			}
		}
		return nil
	})
}

// unchangedFor checks, for d, that user's lots and balance stay what they are now.
func unchangedFor(t *testing.T, user string, d time.Duration) {
	t.Helper()
	lots, balance := fmt.Sprint(lotsOf(t, user)), balanceOf(t, user)
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if now, b := fmt.Sprint(lotsOf(t, user)), balanceOf(t, user); now != lots || b != balance {
			t.Fatalf("%s changed: lots %s, balance %s; were %s, %s", user, now, b, lots, balance)
		}
	}
}
