package controllers

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
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

	v := Validate(obj, nil, t0, 0, Record{})
	if !v.StatusChanged || v.Status.Credits != 5 || v.Status.UpdatedAt == nil || !v.Status.UpdatedAt.Equal(&t0) {
		t.Fatalf("first validation: got %+v", v)
	}
	if c := meta.FindStatusCondition(v.Status.Conditions, creditsv1alpha1.ConditionValid); c == nil || c.Status != metav1.ConditionTrue || c.Reason != creditsv1alpha1.ReasonBalanceValid {
		t.Fatalf("Valid condition: got %+v", c)
	}
	if v.Events != nil {
		t.Errorf("routine acceptance should not record an event, got %+v", v.Events)
	}
	settle(obj, v)

	// A resync with nothing new must not touch status.
	if again := Validate(obj, nil, metav1.NewTime(t0.Add(time.Hour)), 0, Record{}); again.StatusChanged {
		t.Fatalf("resync changed status: %+v", again.Status)
	}

	// A new balance moves updatedAt to the new time.
	obj.Spec.Credits, obj.Generation = 7, 2
	t1 := metav1.NewTime(t0.Add(time.Minute))
	v = Validate(obj, nil, t1, 0, Record{})
	if v.Status.Credits != 7 || !v.Status.UpdatedAt.Equal(&t1) || v.Status.ObservedGeneration != 2 {
		t.Fatalf("balance change: got %+v", v.Status)
	}
}

func TestValidateZeroBalanceIsStamped(t *testing.T) {
	now := metav1.Now()
	v := Validate(newObj(0), nil, now, 0, Record{})
	if v.Status.UpdatedAt == nil || v.Status.Credits != 0 {
		t.Fatalf("zero balance: got %+v", v.Status)
	}
}

func TestValidateNegativeKeepsLastValidBalance(t *testing.T) {
	t0 := metav1.Now()
	obj := newObj(9)
	settle(obj, Validate(obj, nil, t0, 0, Record{}))

	obj.Spec.Credits, obj.Generation = -3, 2
	v := Validate(obj, nil, metav1.NewTime(t0.Add(time.Minute)), 0, Record{})
	if v.Status.Credits != 9 || !v.Status.UpdatedAt.Equal(&t0) {
		t.Fatalf("negative balance leaked into status: %+v", v.Status)
	}
	c := meta.FindStatusCondition(v.Status.Conditions, creditsv1alpha1.ConditionValid)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != creditsv1alpha1.ReasonNegativeBalance || !strings.Contains(c.Message, "-3") {
		t.Fatalf("condition: %+v", c)
	}
	if v.Events == nil || v.Events[0].Type != "Warning" || v.Events[0].Reason != creditsv1alpha1.ReasonNegativeBalance {
		t.Fatalf("event: %+v", v.Events)
	}
	settle(obj, v)

	// The same problem seen again is not re-announced.
	if again := Validate(obj, nil, metav1.Now(), 0, Record{}); again.Events != nil || again.StatusChanged {
		t.Fatalf("repeat of the same problem: changed=%v event=%+v", again.StatusChanged, again.Events)
	}

	// Recovery is announced once, and the balance moves.
	obj.Spec.Credits, obj.Generation = 4, 3
	v = Validate(obj, nil, metav1.Now(), 0, Record{})
	if v.Events == nil || v.Events[0].Type != "Normal" || v.Status.Credits != 4 {
		t.Fatalf("recovery: status=%+v event=%+v", v.Status, v.Events)
	}
}

func TestValidateDuplicateUserID(t *testing.T) {
	obj := newObj(3)
	v := Validate(obj, []string{"b", "c"}, metav1.Now(), 0, Record{})
	c := meta.FindStatusCondition(v.Status.Conditions, creditsv1alpha1.ConditionValid)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != creditsv1alpha1.ReasonDuplicateUserID || !strings.Contains(c.Message, "b, c") {
		t.Fatalf("condition: %+v", c)
	}
	if v.Status.Credits != 0 || v.Status.UpdatedAt != nil {
		t.Fatalf("contested balance reached status: %+v", v.Status)
	}
	if v.Events == nil || v.Events[0].Reason != creditsv1alpha1.ReasonDuplicateUserID {
		t.Fatalf("event: %+v", v.Events)
	}
}

func TestValidateKeepsTransitionTimeWhileConditionHolds(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	obj := newObj(1)
	settle(obj, Validate(obj, nil, t0, 0, Record{}))
	obj.Spec.Credits = 2
	v := Validate(obj, nil, metav1.NewTime(t0.Add(time.Hour)), 0, Record{})
	c := meta.FindStatusCondition(v.Status.Conditions, creditsv1alpha1.ConditionValid)
	if !c.LastTransitionTime.Equal(&t0) {
		t.Fatalf("lastTransitionTime moved without a transition: %v", c.LastTransitionTime)
	}
}

func TestLowBalanceCrossingsAndReserved(t *testing.T) {
	obj := newObj(10)
	obj.Spec.Reservations = []creditsv1alpha1.Reservation{{ID: "a", Credits: 2}, {ID: "b", Credits: 3}}
	v := Validate(obj, nil, metav1.Now(), 0, recordOf(obj))
	settle(obj, v)
	if obj.Status.Reserved != 5 || meta.FindStatusCondition(obj.Status.Conditions, creditsv1alpha1.ConditionLowBalance) != nil {
		t.Fatalf("no threshold: reserved %d, conditions %+v", obj.Status.Reserved, obj.Status.Conditions)
	}
	steps := []struct {
		credits   int64
		threshold int64
		status    metav1.ConditionStatus
		event     string
	}{
		{10, 3, metav1.ConditionFalse, ""},                 // above: no Event for a first False
		{4, 3, metav1.ConditionFalse, ""},                  // still above
		{3, 3, metav1.ConditionTrue, "Warning/LowBalance"}, // crossing down
		{1, 3, metav1.ConditionTrue, ""},                   // staying low: no Event on every write
		{4, 3, metav1.ConditionFalse, "Normal/BalanceRestored"},
		{4, 0, "", ""}, // threshold off: the condition goes
	}
	for i, s := range steps {
		obj.Spec.Credits = s.credits
		v := Validate(obj, nil, metav1.Now(), s.threshold, recordOf(obj))
		settle(obj, v)
		c := meta.FindStatusCondition(obj.Status.Conditions, creditsv1alpha1.ConditionLowBalance)
		got := metav1.ConditionStatus("")
		if c != nil {
			got = c.Status
		}
		event := ""
		for _, e := range v.Events {
			event = e.Type + "/" + e.Reason
		}
		if got != s.status || event != s.event {
			t.Fatalf("step %d (%d credits, threshold %d): condition %q event %q; want %q %q", i, s.credits, s.threshold, got, event, s.status, s.event)
		}
	}
	own := int64(5) // the object's own threshold wins over the operator's
	obj.Spec.LowBalanceThreshold = &own
	if v := Validate(obj, nil, metav1.Now(), 0, Record{}); !meta.IsStatusConditionTrue(v.Status.Conditions, creditsv1alpha1.ConditionLowBalance) {
		t.Fatalf("spec.lowBalanceThreshold 5 at 4 credits: %+v", v.Status.Conditions)
	}
}

// TestMessagesCountCreditsInEnglish: conditions and Events say "1 credit", never
// "1 credits" (the Valid message, the LowBalance message and its Events).
func TestMessagesCountCreditsInEnglish(t *testing.T) {
	obj := newObj(1)
	obj.Status.Conditions = []metav1.Condition{{Type: creditsv1alpha1.ConditionValid, Status: metav1.ConditionFalse, Reason: creditsv1alpha1.ReasonNegativeBalance}}
	v := Validate(obj, nil, metav1.Now(), 3, Record{})
	valid := meta.FindStatusCondition(v.Status.Conditions, creditsv1alpha1.ConditionValid)
	low := meta.FindStatusCondition(v.Status.Conditions, creditsv1alpha1.ConditionLowBalance)
	if valid.Message != "balance of 1 credit accepted" {
		t.Errorf("Valid message %q", valid.Message)
	}
	if low.Message != "1 credit available, at or below the low-balance threshold of 3" {
		t.Errorf("LowBalance message %q", low.Message)
	}
	if len(v.Events) != 2 || v.Events[0].Message != valid.Message || v.Events[1].Message != low.Message {
		t.Errorf("Events %+v, want the recovery and the crossing with the messages above", v.Events)
	}
	settle(obj, v)
	obj.Spec.Credits = 4
	v = Validate(obj, nil, metav1.Now(), 3, Record{})
	if len(v.Events) != 1 || v.Events[0].Message != "4 credits available, above the low-balance threshold of 3" {
		t.Errorf("BalanceRestored Events %+v", v.Events)
	}
	for _, n := range []int64{0, 2} {
		if m := Validate(newObj(n), nil, metav1.Now(), 0, Record{}).Status.Conditions[0].Message; !strings.Contains(m, " credits ") {
			t.Errorf("%d: message %q", n, m)
		}
	}
}

// recordOf is what the reconciler reads of obj's account besides the balance.
func recordOf(obj *creditsv1alpha1.UserCredits) Record { return RecordOf(account.Decode(obj)) }

// TestDamagedPartsAreReportedUntilRepaired: stored parts that cannot be read (a hand edit)
// turn the Intact condition False with a Warning Event naming them, once; repaired, the
// condition goes with a Normal Event.
func TestDamagedPartsAreReportedUntilRepaired(t *testing.T) {
	obj := newObj(5)
	settle(obj, Validate(obj, nil, metav1.Now(), 0, recordOf(obj)))
	if c := meta.FindStatusCondition(obj.Status.Conditions, creditsv1alpha1.ConditionIntact); c != nil {
		t.Fatalf("an intact record has %+v", c)
	}
	obj.Annotations = map[string]string{account.HistorySeqAnnotation: "-7"}
	v := Validate(obj, nil, metav1.Now(), 0, recordOf(obj))
	settle(obj, v)
	c := meta.FindStatusCondition(obj.Status.Conditions, creditsv1alpha1.ConditionIntact)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != creditsv1alpha1.ReasonDamagedParts || !strings.Contains(c.Message, account.HistorySeqAnnotation) {
		t.Fatalf("damaged history count: condition %+v", c)
	}
	if len(v.Events) != 1 || v.Events[0].Type != "Warning" || v.Events[0].Reason != creditsv1alpha1.ReasonDamagedParts {
		t.Fatalf("damaged history count: events %+v", v.Events)
	}
	if again := Validate(obj, nil, metav1.Now(), 0, recordOf(obj)); again.StatusChanged || len(again.Events) != 0 {
		t.Fatalf("the same damage again: %+v", again)
	}
	if c := meta.FindStatusCondition(obj.Status.Conditions, creditsv1alpha1.ConditionValid); c.Status != metav1.ConditionTrue {
		t.Fatalf("a damaged history must not make the balance invalid: %+v", c)
	}
	obj.Annotations = nil
	v = Validate(obj, nil, metav1.Now(), 0, recordOf(obj))
	settle(obj, v)
	if meta.FindStatusCondition(obj.Status.Conditions, creditsv1alpha1.ConditionIntact) != nil || len(v.Events) != 1 || v.Events[0].Reason != creditsv1alpha1.ReasonRepaired {
		t.Fatalf("repaired: conditions %+v, events %+v", obj.Status.Conditions, v.Events)
	}
}

// TestValidateImportedBalanceKeepsItsTime: a balance as `kubectl credits import` wrote it
// takes its updated_at from the export, until the balance changes.
func TestValidateImportedBalanceKeepsItsTime(t *testing.T) {
	source := time.Date(2024, 5, 1, 12, 34, 56, 0, time.UTC)
	now := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	obj := newObj(25)
	obj.Annotations = map[string]string{account.ImportedAnnotation: account.Imported{Row: "r1", Generation: 1, UpdatedAt: &source}.Encode()}
	v := Validate(obj, nil, now, 0, Record{})
	if v.Status.UpdatedAt == nil || !v.Status.UpdatedAt.Time.Equal(source) {
		t.Fatalf("imported balance: updatedAt %v, want the export's %v", v.Status.UpdatedAt, source)
	}
	settle(obj, v)
	// Spent since: the import's time no longer describes the balance.
	obj.Spec.Credits, obj.Generation = 24, 2
	if v = Validate(obj, nil, now, 0, Record{}); !v.Status.UpdatedAt.Equal(&now) {
		t.Fatalf("after a change: updatedAt %v, want now", v.Status.UpdatedAt)
	}
	// Set back to the imported balance: still a change of now, not the export's time.
	settle(obj, v)
	obj.Spec.Credits, obj.Generation = 25, 3
	later := metav1.NewTime(now.Add(time.Hour))
	if v = Validate(obj, nil, later, 0, Record{}); !v.Status.UpdatedAt.Equal(&later) {
		t.Fatalf("set back: updatedAt %v, want %v", v.Status.UpdatedAt, later)
	}
}
