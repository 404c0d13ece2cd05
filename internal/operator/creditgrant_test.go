package operator_test

// CreditGrants (issue 20 §2): a grant authored in Git is applied exactly once through
// everything a GitOps tool does, and its outcome is in its status and Events.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/test/framework"
)

const (
	applied = metav1.ConditionTrue
	refused = metav1.ConditionFalse
)

// loseStatus puts CreditGrant name back in the state an operator killed between the
// user's write and the CreditGrant's status write leaves: the user's record holds the lot
// and the grant's key, the CreditGrant no status.
func loseStatus(t *testing.T, name string) {
	t.Helper()
	cg := creditGrant(t, name)
	cg.Status = creditsv1alpha1.CreditGrantStatus{}
	if err := k8sClient.Status().Update(context.Background(), cg); err != nil {
		t.Fatal(err)
	}
}

// deleteGrant deletes CreditGrant name, as a GitOps tool prunes it, and waits until it is gone.
func deleteGrant(t *testing.T, name string) {
	t.Helper()
	if err := k8sClient.Delete(context.Background(), creditGrant(t, name)); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 5*time.Second, func() error {
		err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: testNamespace, Name: name}, &creditsv1alpha1.CreditGrant{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("CreditGrant %s not deleted yet: %v", name, err)
		}
		return nil
	})
}

func TestCreditGrantAppliedExactlyOnce(t *testing.T) {
	ctx := context.Background()
	user := "user_CG1"
	expires := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	m := grantManifest{name: "welcome.cg1", user: user, credits: 40, expiresAt: expires, priority: 10, reason: "welcome bonus"}
	m.apply(t, "argocd-controller")

	cg := waitApplied(t, m.name, applied, creditsv1alpha1.ReasonGranted)
	lotID := cg.Status.LotID
	if cg.Status.ObservedGeneration != cg.Generation {
		t.Errorf("status.observedGeneration %d, generation %d", cg.Status.ObservedGeneration, cg.Generation)
	}
	lot := expectOneGitOpsLot(t, user, cg)
	if lot.Priority != 10 || lot.Reason != "welcome bonus" || lot.ExpiresAt != expires.Format(time.RFC3339) {
		t.Errorf("the lot's terms %+v; want priority 10, reason %q, expiresAt %s", lot, "welcome bonus", expires.Format(time.RFC3339))
	}
	waitEvents(t, m.name, "CreditsGranted", false, 1, `Normal: 40 credits granted to user "user_CG1": lot `+lotID)
	waitEvents(t, m.name, "CreditsGranted", true, 1, "Normal: 40 credits granted by CreditGrant welcome.cg1: lot "+lotID)

	// Every sync applies the manifest again, by the same tool or another one: nothing changes.
	m.apply(t, "argocd-controller")
	m.apply(t, "kustomize-controller")
	unchangedFor(t, user, time.Second)
	if got := creditGrant(t, m.name).Status; got.LotID != lotID || !got.AppliedAt.Equal(cg.Status.AppliedAt) {
		t.Fatalf("status after the re-syncs %+v, was %+v", got, cg.Status)
	}

	// The operator killed after the user's write, before the status write: the key replays.
	loseStatus(t, m.name)
	again := waitApplied(t, m.name, applied, creditsv1alpha1.ReasonGranted)
	if again.Status.LotID != lotID {
		t.Fatalf("after the lost status write: lot %s, was %s", again.Status.LotID, lotID)
	}
	expectOneGitOpsLot(t, user, again)
	waitEvents(t, m.name, "AlreadyGranted", false, 1, "lot "+lotID, "nothing granted again")
	waitEvents(t, m.name, "CreditsGranted", true, 1)

	// The spec cannot change: new terms are a new CreditGrant.
	edited := creditGrant(t, m.name)
	patch := client.MergeFrom(edited.DeepCopy())
	edited.Spec.Credits = 400
	if err := k8sClient.Patch(ctx, edited, patch); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "a CreditGrant cannot be changed") {
		t.Fatalf("changing spec.credits: %v, want the CRD's refusal", err)
	}

	// Pruned: deleting it takes nothing back. Re-created under the same name (within the
	// grant-key retention): a replay, not a second lot.
	deleteGrant(t, m.name)
	unchangedFor(t, user, 500*time.Millisecond)
	m.apply(t, "argocd-controller")
	recreated := waitApplied(t, m.name, applied, creditsv1alpha1.ReasonGranted)
	if recreated.UID == cg.UID || recreated.Status.LotID != lotID {
		t.Fatalf("re-created CreditGrant: uid %s (was %s), lot %s (was %s)", recreated.UID, cg.UID, recreated.Status.LotID, lotID)
	}
	expectOneGitOpsLot(t, user, recreated)
	waitEvents(t, m.name, "AlreadyGranted", false, 2, "lot "+lotID)

	// Re-created under the same name with other terms: refused for good, nothing granted.
	deleteGrant(t, m.name)
	other := m
	other.credits = 41
	other.apply(t, "argocd-controller")
	waitApplied(t, m.name, refused, creditsv1alpha1.ReasonNameReused)
	waitEvents(t, m.name, creditsv1alpha1.ReasonNameReused, false, 1, "Warning: ", "creditgrant:welcome.cg1", "new name")
	expectOneGitOpsLot(t, user, recreated)
}

func TestCreditGrantRefusals(t *testing.T) {
	ctx := context.Background()

	// spec.expiresAt already past: nothing granted, not even a record for the user.
	expired := grantManifest{name: "expired-cg2", user: "user_CG2", credits: 5, expiresAt: time.Now().Add(-time.Hour)}
	if err := k8sClient.Create(ctx, expired.object()); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, expired.name, refused, creditsv1alpha1.ReasonExpired)
	waitEvents(t, expired.name, creditsv1alpha1.ReasonExpired, false, 1, "Warning: ", "nothing granted")
	err := k8sClient.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: account.ObjectNameForUser(expired.user)}, &creditsv1alpha1.UserCredits{})
	if !apierrors.IsNotFound(err) || len(lotsOf(t, expired.user)) != 0 {
		t.Fatalf("an expired grant made a record or a lot: %v %+v", err, lotsOf(t, expired.user))
	}

	// A user ID the API could never name.
	invalid := grantManifest{name: "invalid-cg2", user: "user CG2", credits: 5}
	if err := k8sClient.Create(ctx, invalid.object()); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, invalid.name, refused, creditsv1alpha1.ReasonInvalid)

	// Two objects claim the user: refused until one is deleted, then applied once.
	user := "user_CG3"
	for _, name := range []string{"cg3-twice-a", "cg3-twice-b"} {
		obj := &creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace},
			Spec: creditsv1alpha1.UserCreditsSpec{UserID: user, Credits: 4}}
		if err := k8sClient.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	framework.Eventually(t, 5*time.Second, func() error { // the store sees both
		if status, body := call(t, "GET", tokenFor(t, user), ""); status != 500 {
			return fmt.Errorf("GET = %d %s", status, body)
		}
		return nil
	})
	m := grantManifest{name: "cg3", user: user, credits: 6}
	if err := k8sClient.Create(ctx, m.object()); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, m.name, refused, creditsv1alpha1.ReasonUserUntrusted)
	waitEvents(t, m.name, creditsv1alpha1.ReasonUserUntrusted, false, 1, "Warning: ", "applied once it is fixed")
	if err := k8sClient.Delete(ctx, &creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{Name: "cg3-twice-b", Namespace: testNamespace}}); err != nil {
		t.Fatal(err)
	}
	cg := waitApplied(t, m.name, applied, creditsv1alpha1.ReasonGranted)
	var gitops []lotView
	for _, l := range lotsOf(t, user) {
		if l.Source == account.SourceGitOps {
			gitops = append(gitops, l)
		}
	}
	if len(gitops) != 1 || gitops[0].ID != cg.Status.LotID || gitops[0].Remaining != 6 || balanceOf(t, user) != `{"credits":10}` {
		t.Fatalf("after the fix: gitops lots %+v, balance %s; want lot %s of 6 on top of 4", gitops, balanceOf(t, user), cg.Status.LotID)
	}
	waitEvents(t, m.name, "CreditsGranted", true, 1, "lot "+cg.Status.LotID)
}

// TestCreditGrantsOnTwoReplicas: both replicas' controllers reconcile every CreditGrant
// (leader election is off here, as during a hand-over), created all at once: each is one lot.
func TestCreditGrantsOnTwoReplicas(t *testing.T) {
	extraReplica(t)
	user := "user_CG4"
	const n = 6
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- k8sClient.Create(context.Background(), grantManifest{name: fmt.Sprintf("cg4-%d", i), user: user, credits: int64(i + 1)}.object())
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{} // lot → CreditGrant
	for i := range n {
		cg := waitApplied(t, fmt.Sprintf("cg4-%d", i), applied, creditsv1alpha1.ReasonGranted)
		want[cg.Status.LotID] = cg.Name
	}
	unchangedFor(t, user, time.Second) // the second replica's attempts settle as replays
	lots := lotsOf(t, user)
	if len(lots) != n || len(want) != n {
		t.Fatalf("%d lots for %d CreditGrants (%d distinct lots in their status): %+v", len(lots), n, len(want), lots)
	}
	for _, l := range lots {
		if want[l.ID] != l.Reference || l.Source != account.SourceGitOps {
			t.Errorf("lot %+v is not the one a CreditGrant's status names", l)
		}
	}
	if got := balanceOf(t, user); got != fmt.Sprintf(`{"credits":%d}`, n*(n+1)/2) {
		t.Fatalf("balance %s, want %d", got, n*(n+1)/2)
	}
}

// TestCreditGrantLostStatusAfterItsExpiry: a grant applied just before its expiresAt whose
// status write was lost is told its lot when tried again after the expiry, not Expired.
func TestCreditGrantLostStatusAfterItsExpiry(t *testing.T) {
	user := "user_CG5"
	m := grantManifest{name: "cg5", user: user, credits: 9, expiresAt: time.Now().Add(4 * time.Second)}
	if err := k8sClient.Create(context.Background(), m.object()); err != nil {
		t.Fatal(err)
	}
	cg := waitApplied(t, m.name, applied, creditsv1alpha1.ReasonGranted)
	framework.Eventually(t, 10*time.Second, func() error { // the lot expired
		if lots := lotsOf(t, user); len(lots) != 0 || balanceOf(t, user) != `{"credits":0}` {
			return fmt.Errorf("lots %+v after the expiry", lots)
		}
		return nil
	})
	loseStatus(t, m.name)
	if again := waitApplied(t, m.name, applied, creditsv1alpha1.ReasonGranted); again.Status.LotID != cg.Status.LotID {
		t.Fatalf("lot %s after the lost status write, was %s", again.Status.LotID, cg.Status.LotID)
	}
	unchangedFor(t, user, 500*time.Millisecond)
}
