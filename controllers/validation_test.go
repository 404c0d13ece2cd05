package controllers

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

func newObj(credits int64) *creditsv1alpha1.UserCredits {
	return &creditsv1alpha1.UserCredits{
		ObjectMeta: metav1.ObjectMeta{Name: "a", Generation: 1},
		Spec:       creditsv1alpha1.UserCreditsSpec{UserID: "user_A", Credits: credits},
	}
}

// settle applies a verdict's status to obj, as the controller's status patch would.
func settle(obj *creditsv1alpha1.UserCredits, v Verdict) { obj.Status = v.Status }

func TestValidateAcceptsBalanceAndStampsUpdatedAtOnce(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	obj := newObj(5)

	v := Validate(obj, nil, t0)
	if !v.StatusChanged || v.Status.Credits != 5 || v.Status.UpdatedAt == nil || !v.Status.UpdatedAt.Equal(&t0) {
		t.Fatalf("first validation: got %+v", v)
	}
	if c := meta.FindStatusCondition(v.Status.Conditions, creditsv1alpha1.ConditionValid); c == nil || c.Status != metav1.ConditionTrue || c.Reason != creditsv1alpha1.ReasonBalanceValid {
		t.Fatalf("Valid condition: got %+v", c)
	}
	if v.Event != nil {
		t.Errorf("routine acceptance should not record an event, got %+v", v.Event)
	}
	settle(obj, v)

	// A resync with nothing new must not touch status.
	if again := Validate(obj, nil, metav1.NewTime(t0.Add(time.Hour))); again.StatusChanged {
		t.Fatalf("resync changed status: %+v", again.Status)
	}

	// A new balance moves updatedAt to the new time.
	obj.Spec.Credits, obj.Generation = 7, 2
	t1 := metav1.NewTime(t0.Add(time.Minute))
	v = Validate(obj, nil, t1)
	if v.Status.Credits != 7 || !v.Status.UpdatedAt.Equal(&t1) || v.Status.ObservedGeneration != 2 {
		t.Fatalf("balance change: got %+v", v.Status)
	}
}

func TestValidateZeroBalanceIsStamped(t *testing.T) {
	now := metav1.Now()
	v := Validate(newObj(0), nil, now)
	if v.Status.UpdatedAt == nil || v.Status.Credits != 0 {
		t.Fatalf("zero balance: got %+v", v.Status)
	}
}

func TestValidateNegativeKeepsLastValidBalance(t *testing.T) {
	t0 := metav1.Now()
	obj := newObj(9)
	settle(obj, Validate(obj, nil, t0))

	obj.Spec.Credits, obj.Generation = -3, 2
	v := Validate(obj, nil, metav1.NewTime(t0.Add(time.Minute)))
	if v.Status.Credits != 9 || !v.Status.UpdatedAt.Equal(&t0) {
		t.Fatalf("negative balance leaked into status: %+v", v.Status)
	}
	c := meta.FindStatusCondition(v.Status.Conditions, creditsv1alpha1.ConditionValid)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != creditsv1alpha1.ReasonNegativeBalance || !strings.Contains(c.Message, "-3") {
		t.Fatalf("condition: %+v", c)
	}
	if v.Event == nil || v.Event.Type != "Warning" || v.Event.Reason != creditsv1alpha1.ReasonNegativeBalance {
		t.Fatalf("event: %+v", v.Event)
	}
	settle(obj, v)

	// The same problem seen again is not re-announced.
	if again := Validate(obj, nil, metav1.Now()); again.Event != nil || again.StatusChanged {
		t.Fatalf("repeat of the same problem: changed=%v event=%+v", again.StatusChanged, again.Event)
	}

	// Recovery is announced once, and the balance moves.
	obj.Spec.Credits, obj.Generation = 4, 3
	v = Validate(obj, nil, metav1.Now())
	if v.Event == nil || v.Event.Type != "Normal" || v.Status.Credits != 4 {
		t.Fatalf("recovery: status=%+v event=%+v", v.Status, v.Event)
	}
}

func TestValidateDuplicateUserID(t *testing.T) {
	obj := newObj(3)
	v := Validate(obj, []string{"b", "c"}, metav1.Now())
	c := meta.FindStatusCondition(v.Status.Conditions, creditsv1alpha1.ConditionValid)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != creditsv1alpha1.ReasonDuplicateUserID || !strings.Contains(c.Message, "b, c") {
		t.Fatalf("condition: %+v", c)
	}
	if v.Status.Credits != 0 || v.Status.UpdatedAt != nil {
		t.Fatalf("contested balance reached status: %+v", v.Status)
	}
	if v.Event == nil || v.Event.Reason != creditsv1alpha1.ReasonDuplicateUserID {
		t.Fatalf("event: %+v", v.Event)
	}
}

func TestValidateKeepsTransitionTimeWhileConditionHolds(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	obj := newObj(1)
	settle(obj, Validate(obj, nil, t0))
	obj.Spec.Credits = 2
	v := Validate(obj, nil, metav1.NewTime(t0.Add(time.Hour)))
	c := meta.FindStatusCondition(v.Status.Conditions, creditsv1alpha1.ConditionValid)
	if !c.LastTransitionTime.Equal(&t0) {
		t.Fatalf("lastTransitionTime moved without a transition: %v", c.LastTransitionTime)
	}
}
