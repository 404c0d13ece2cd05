package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	eventsv1 "k8s.io/api/events/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/metrics"
)

func newUserCredits(name, userID string, balance int64) *creditsv1alpha1.UserCredits {
	return &creditsv1alpha1.UserCredits{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace},
		Spec:       creditsv1alpha1.UserCreditsSpec{UserID: userID, Credits: balance},
	}
}

func get(t *testing.T, name string) *creditsv1alpha1.UserCredits {
	t.Helper()
	obj := &creditsv1alpha1.UserCredits{}
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: testNamespace, Name: name}, obj); err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	return obj
}

// waitValid waits until name's Valid condition has the given status and reason for its
// current generation, and returns the object.
func waitValid(t *testing.T, name string, status metav1.ConditionStatus, reason string) *creditsv1alpha1.UserCredits {
	t.Helper()
	var obj *creditsv1alpha1.UserCredits
	eventually(t, 10*time.Second, func() error {
		obj = get(t, name)
		c := meta.FindStatusCondition(obj.Status.Conditions, creditsv1alpha1.ConditionValid)
		if c == nil || c.Status != status || c.Reason != reason || obj.Status.ObservedGeneration != obj.Generation {
			return fmt.Errorf("%s: want Valid=%s/%s at generation %d, have %+v (observed %d)", name, status, reason, obj.Generation, c, obj.Status.ObservedGeneration)
		}
		return nil
	})
	return obj
}

// waitEvent waits for an events.k8s.io Event about name with the given type and reason.
func waitEvent(t *testing.T, name, eventType, reason string) eventsv1.Event {
	t.Helper()
	var found eventsv1.Event
	eventually(t, 10*time.Second, func() error {
		var list eventsv1.EventList
		if err := k8sClient.List(context.Background(), &list, client.InNamespace(testNamespace)); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Name == name && e.Type == eventType && e.Reason == reason {
				found = e
				return nil
			}
		}
		return fmt.Errorf("no %s event %s about %s among %d events", eventType, reason, name, len(list.Items))
	})
	return found
}

func setBalance(t *testing.T, name string, balance int64) {
	t.Helper()
	patch := []byte(fmt.Sprintf(`{"spec":{"credits":%d}}`, balance))
	obj := newUserCredits(name, "", 0)
	if err := k8sClient.Patch(context.Background(), obj, client.RawPatch("application/merge-patch+json", patch)); err != nil {
		t.Fatalf("setting %s to %d: %v", name, balance, err)
	}
}

func TestCreateIsValidatedIntoStatus(t *testing.T) {
	ctx := context.Background()
	if err := k8sClient.Create(ctx, newUserCredits("create", "user_Create1", 5)); err != nil {
		t.Fatal(err)
	}
	obj := waitValid(t, "create", metav1.ConditionTrue, creditsv1alpha1.ReasonBalanceValid)
	if obj.Status.Credits != 5 || obj.Status.UpdatedAt == nil || obj.Status.ObservedGeneration != 1 {
		t.Fatalf("status: %+v", obj.Status)
	}
}

func TestBalanceChangeMovesUpdatedAtOnceAndSettles(t *testing.T) {
	ctx := context.Background()
	if err := k8sClient.Create(ctx, newUserCredits("change", "user_Change1", 1)); err != nil {
		t.Fatal(err)
	}
	first := waitValid(t, "change", metav1.ConditionTrue, creditsv1alpha1.ReasonBalanceValid)

	// updatedAt has one-second resolution: step past it so a change is visible.
	time.Sleep(1100 * time.Millisecond)
	setBalance(t, "change", 8)
	var second *creditsv1alpha1.UserCredits
	eventually(t, 10*time.Second, func() error {
		second = get(t, "change")
		if second.Status.Credits != 8 {
			return fmt.Errorf("status.credits = %d, want 8", second.Status.Credits)
		}
		return nil
	})
	if !second.Status.UpdatedAt.After(first.Status.UpdatedAt.Time) {
		t.Fatalf("updatedAt did not move: %v then %v", first.Status.UpdatedAt, second.Status.UpdatedAt)
	}

	// A change that is not a balance change leaves updatedAt alone.
	time.Sleep(1100 * time.Millisecond)
	labelled := get(t, "change")
	labelled.Labels = map[string]string{"tier": "gold"}
	if err := k8sClient.Update(ctx, labelled); err != nil {
		t.Fatal(err)
	}
	// No hot loop: once settled, the object's resourceVersion stays put.
	settled := get(t, "change")
	time.Sleep(2 * time.Second)
	after := get(t, "change")
	if after.ResourceVersion != settled.ResourceVersion {
		t.Fatalf("object keeps changing with no input: resourceVersion %s then %s", settled.ResourceVersion, after.ResourceVersion)
	}
	if !after.Status.UpdatedAt.Equal(second.Status.UpdatedAt) {
		t.Fatalf("updatedAt moved on a label change: %v then %v", second.Status.UpdatedAt, after.Status.UpdatedAt)
	}
}

func TestSchemaRejectsBadObjects(t *testing.T) {
	ctx := context.Background()
	cases := map[string]*creditsv1alpha1.UserCredits{
		"negative balance":         newUserCredits("schema-neg", "user_Schema1", -1),
		"empty userID":             newUserCredits("schema-empty", "", 1),
		"userID too long":          newUserCredits("schema-long", strings.Repeat("u", 256), 1),
		"balance over the largest": newUserCredits("schema-over", "user_Schema2", account.MaxBalance+1),
	}
	for name, hold := range map[string]creditsv1alpha1.Reservation{
		"hold over the largest": holdOf("h", account.MaxBalance+1),
		"hold ID with a space":  holdOf("a b", 1),
	} {
		obj := newUserCredits("schema-hold", "user_Schema3", 1)
		obj.Spec.Reservations = []creditsv1alpha1.Reservation{hold}
		cases[name] = obj
	}
	for name, obj := range cases {
		if err := k8sClient.Create(ctx, obj); !apierrors.IsInvalid(err) {
			t.Errorf("%s: want Invalid, got %v", name, err)
		}
	}

	if err := k8sClient.Create(ctx, newUserCredits("immutable", "user_Immutable1", 1)); err != nil {
		t.Fatal(err)
	}
	err := k8sClient.Patch(ctx, newUserCredits("immutable", "", 0), client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"userID":"user_Other"}}`)))
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "userID is immutable") {
		t.Fatalf("changing userID: want Invalid 'userID is immutable', got %v", err)
	}
}

// withoutMinimum installs a variant of the CRD whose spec.credits has no minimum, as an
// older CRD or a bypassed schema would, and restores the real one when the test ends.
func withoutMinimum(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	key := client.ObjectKey{Name: "usercredits.credits.gitread.dev"}
	setMinimum := func(min *float64) {
		eventually(t, 10*time.Second, func() error {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := k8sClient.Get(ctx, key, crd); err != nil {
				return err
			}
			spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
			credits := spec.Properties["credits"]
			credits.Minimum = min
			spec.Properties["credits"] = credits
			crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = spec
			return k8sClient.Update(ctx, crd)
		})
	}
	setMinimum(nil)
	t.Cleanup(func() {
		zero := 0.0
		setMinimum(&zero)
		// Wait until the apiserver enforces the minimum again, for the tests that follow.
		probe := newUserCredits("minimum-probe", "user_Probe", -1)
		eventually(t, 10*time.Second, func() error {
			err := k8sClient.Create(ctx, probe.DeepCopy())
			if err == nil {
				_ = k8sClient.Delete(ctx, probe)
				return fmt.Errorf("negative balance still accepted")
			}
			return nil
		})
	})
}

func TestNegativeBalanceIsInvalidAndKeepsLastValid(t *testing.T) {
	ctx := context.Background()
	if err := k8sClient.Create(ctx, newUserCredits("negative", "user_Negative1", 10)); err != nil {
		t.Fatal(err)
	}
	valid := waitValid(t, "negative", metav1.ConditionTrue, creditsv1alpha1.ReasonBalanceValid)

	negativeBefore := testutil.ToFloat64(metrics.ValidationFailures.WithLabelValues(creditsv1alpha1.ReasonNegativeBalance))
	withoutMinimum(t)
	// The new schema takes a moment to reach the apiserver's handlers.
	eventually(t, 10*time.Second, func() error {
		return k8sClient.Patch(ctx, newUserCredits("negative", "", 0), client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"credits":-5}}`)))
	})

	obj := waitValid(t, "negative", metav1.ConditionFalse, creditsv1alpha1.ReasonNegativeBalance)
	if obj.Status.Credits != 10 || !obj.Status.UpdatedAt.Equal(valid.Status.UpdatedAt) {
		t.Fatalf("status after a negative balance: %+v (want credits 10, updatedAt %v)", obj.Status, valid.Status.UpdatedAt)
	}
	c := meta.FindStatusCondition(obj.Status.Conditions, creditsv1alpha1.ConditionValid)
	if !strings.Contains(c.Message, "-5") || !strings.Contains(c.Message, "cannot be negative") {
		t.Fatalf("condition message is not clear: %q", c.Message)
	}
	e := waitEvent(t, "negative", "Warning", creditsv1alpha1.ReasonNegativeBalance)
	if d := testutil.ToFloat64(metrics.ValidationFailures.WithLabelValues(creditsv1alpha1.ReasonNegativeBalance)) - negativeBefore; d != 1 {
		t.Errorf("usercredits_validation_failures_total{NegativeBalance} grew by %v, want 1", d)
	}
	if !strings.Contains(e.Note, "-5") {
		t.Fatalf("event note: %q", e.Note)
	}

	// Back to a valid balance: accepted again, with a Normal event.
	setBalance(t, "negative", 3)
	obj = waitValid(t, "negative", metav1.ConditionTrue, creditsv1alpha1.ReasonBalanceValid)
	if obj.Status.Credits != 3 {
		t.Fatalf("status.credits = %d, want 3", obj.Status.Credits)
	}
	waitEvent(t, "negative", "Normal", creditsv1alpha1.ReasonBalanceValid)
}

func TestDuplicateUserIDFlagsBothUntilOneIsDeleted(t *testing.T) {
	ctx := context.Background()
	if err := k8sClient.Create(ctx, newUserCredits("dup-a", "user_Dup1", 4)); err != nil {
		t.Fatal(err)
	}
	waitValid(t, "dup-a", metav1.ConditionTrue, creditsv1alpha1.ReasonBalanceValid)
	// A different case is a different Clerk user: no duplicate.
	if err := k8sClient.Create(ctx, newUserCredits("dup-case", "user_DUP1", 4)); err != nil {
		t.Fatal(err)
	}
	if err := k8sClient.Create(ctx, newUserCredits("dup-b", "user_Dup1", 9)); err != nil {
		t.Fatal(err)
	}

	a := waitValid(t, "dup-a", metav1.ConditionFalse, creditsv1alpha1.ReasonDuplicateUserID)
	b := waitValid(t, "dup-b", metav1.ConditionFalse, creditsv1alpha1.ReasonDuplicateUserID)
	waitValid(t, "dup-case", metav1.ConditionTrue, creditsv1alpha1.ReasonBalanceValid)
	if a.Status.Credits != 4 {
		t.Errorf("dup-a status.credits = %d, want the last valid 4", a.Status.Credits)
	}
	if b.Status.UpdatedAt != nil {
		t.Errorf("dup-b was never valid but has updatedAt %v", b.Status.UpdatedAt)
	}
	for _, name := range []string{"dup-a", "dup-b"} {
		e := waitEvent(t, name, "Warning", creditsv1alpha1.ReasonDuplicateUserID)
		if !strings.Contains(e.Note, "user_Dup1") {
			t.Errorf("event note for %s does not name the user: %q", name, e.Note)
		}
	}

	if err := k8sClient.Delete(ctx, newUserCredits("dup-b", "", 0)); err != nil {
		t.Fatal(err)
	}
	a = waitValid(t, "dup-a", metav1.ConditionTrue, creditsv1alpha1.ReasonBalanceValid)
	if a.Status.Credits != 4 {
		t.Fatalf("dup-a status.credits = %d after the duplicate left, want 4", a.Status.Credits)
	}
}

func TestDeleteIsQuiet(t *testing.T) {
	ctx := context.Background()
	if err := k8sClient.Create(ctx, newUserCredits("delete", "user_Delete1", 2)); err != nil {
		t.Fatal(err)
	}
	waitValid(t, "delete", metav1.ConditionTrue, creditsv1alpha1.ReasonBalanceValid)
	if err := k8sClient.Delete(ctx, newUserCredits("delete", "", 0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		err := k8sClient.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: "delete"}, &creditsv1alpha1.UserCredits{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there: %v", err)
		}
		return nil
	})
	// Recreating the same name starts fresh: validated again.
	if err := k8sClient.Create(ctx, newUserCredits("delete", "user_Delete1", 6)); err != nil {
		t.Fatal(err)
	}
	obj := waitValid(t, "delete", metav1.ConditionTrue, creditsv1alpha1.ReasonBalanceValid)
	if obj.Status.Credits != 6 {
		t.Fatalf("status.credits = %d, want 6", obj.Status.Credits)
	}
}

// TestNameLabelFollowsTheName: an object under its user's derived name, created without
// account.NameLabel (by an earlier version, or kubectl), gets it; one under another name
// that carries it (a copied label) loses it, so a warming replica's list of foreign names
// never misses it.
func TestNameLabelFollowsTheName(t *testing.T) {
	ctx := context.Background()
	derived := newUserCredits(account.ObjectNameForUser("user_Label1"), "user_Label1", 1)
	copied := newUserCredits("label-from-git", "user_Label2", 1)
	copied.Labels = map[string]string{account.NameLabel: account.NameDerived}
	for _, obj := range []*creditsv1alpha1.UserCredits{derived, copied} {
		if err := k8sClient.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, func() error {
		if got := get(t, derived.Name).Labels[account.NameLabel]; got != account.NameDerived {
			return fmt.Errorf("%s has %s=%q, want %q", derived.Name, account.NameLabel, got, account.NameDerived)
		}
		if got, ok := get(t, copied.Name).Labels[account.NameLabel]; ok {
			return fmt.Errorf("%s still has %s=%q", copied.Name, account.NameLabel, got)
		}
		return nil
	})
}
