package controllers

// The controller judges a record by the account model's own invariants (account.Decode,
// account.ValidUserID): Valid=True only for what the credits API serves. The CRD's bounds
// are the model's, so that most such records cannot be written at all.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/metrics"
)

// holdOf is an open hold that expires in an hour.
func holdOf(id string, credits int64) creditsv1alpha1.Reservation {
	return creditsv1alpha1.Reservation{ID: id, Credits: credits, ExpiresAt: metav1.NewTime(time.Now().Add(time.Hour))}
}

// TestValidateRefusesWhatTheAPIRefuses: each record the account model refuses to serve
// (hand edits kubectl or an older CRD let in) turns Valid=False with a reason that says
// why and a Warning Event, and status.credits keeps the last valid balance. Each case is
// first checked against the model itself, so the test follows the model, not a copy.
func TestValidateRefusesWhatTheAPIRefuses(t *testing.T) {
	const max = account.MaxBalance
	var tooMany []creditsv1alpha1.Reservation
	for i := range account.MaxOpenHolds + 1 {
		tooMany = append(tooMany, holdOf(fmt.Sprintf("h%d", i), 1))
	}
	cases := []struct {
		name      string
		edit      func(*creditsv1alpha1.UserCredits)
		reason    string
		inMessage string
	}{
		{"balance over the largest", func(o *creditsv1alpha1.UserCredits) { o.Spec.Credits = max + 1 }, creditsv1alpha1.ReasonUntrustedRecord, "9007199254740992 available"},
		{"available and held over the largest", func(o *creditsv1alpha1.UserCredits) {
			o.Spec.Credits, o.Spec.Reservations = max, []creditsv1alpha1.Reservation{holdOf("h", 1)}
		}, creditsv1alpha1.ReasonUntrustedRecord, "exceed the largest balance"},
		{"hold ID with a space", func(o *creditsv1alpha1.UserCredits) {
			o.Spec.Reservations = []creditsv1alpha1.Reservation{holdOf("a b", 1)}
		},
			creditsv1alpha1.ReasonUntrustedRecord, `hold "a b"`},
		{"repeated hold ID", func(o *creditsv1alpha1.UserCredits) {
			o.Spec.Reservations = []creditsv1alpha1.Reservation{holdOf("h", 1), holdOf("h", 2)}
		}, creditsv1alpha1.ReasonUntrustedRecord, `hold "h"`},
		{"repeated lot ID (spec.lots is an atomic list: the apiserver lets it in)", func(o *creditsv1alpha1.UserCredits) {
			lot := creditsv1alpha1.Lot{ID: "a", Credits: 5, Remaining: 5, Priority: account.DefaultPriority, Source: account.SourceAPI}
			o.Spec.Lots = []creditsv1alpha1.Lot{lot, lot}
		}, creditsv1alpha1.ReasonUntrustedRecord, `lot "a"`},
		{"hold of no credits", func(o *creditsv1alpha1.UserCredits) {
			o.Spec.Reservations = []creditsv1alpha1.Reservation{holdOf("h", 0)}
		},
			creditsv1alpha1.ReasonUntrustedRecord, `hold "h" of 0 credits`},
		{"more holds than allowed", func(o *creditsv1alpha1.UserCredits) { o.Spec.Reservations = tooMany }, creditsv1alpha1.ReasonUntrustedRecord, "101 open holds"},
		{"damaged key ledger", func(o *creditsv1alpha1.UserCredits) {
			o.Annotations = map[string]string{account.AppliedRequestsAnnotation: "garbage"}
		}, creditsv1alpha1.ReasonUntrustedRecord, "ledger is damaged"},
		{"user ID with a space", func(o *creditsv1alpha1.UserCredits) { o.Spec.UserID = "user A" }, creditsv1alpha1.ReasonInvalidUserID, `"user A"`},
		{"user ID with a zero-width space", func(o *creditsv1alpha1.UserCredits) { o.Spec.UserID = "user_\u200bA" }, creditsv1alpha1.ReasonInvalidUserID, "user_"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			obj := newObj(10)
			settle(obj, Validate(obj, nil, metav1.Now(), 0, recordOf(obj)))
			c.edit(obj)
			obj.Generation = 2
			_, decodeErr := account.Decode(obj)
			_, idErr := account.ParseUserID(obj.Spec.UserID)
			if !errors.Is(decodeErr, account.ErrUntrusted) && idErr == nil {
				t.Fatalf("the account model serves this record; the case is wrong")
			}

			v := Validate(obj, nil, metav1.Now(), 20, recordOf(obj))
			cond := meta.FindStatusCondition(v.Status.Conditions, creditsv1alpha1.ConditionValid)
			if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != c.reason ||
				!strings.Contains(cond.Message, c.inMessage) || !strings.Contains(cond.Message, "status.credits keeps the last valid balance 10") {
				t.Fatalf("Valid condition %+v; want False/%s naming %q", cond, c.reason, c.inMessage)
			}
			if v.Status.Credits != 10 {
				t.Errorf("status.credits %d; want the last valid balance, 10", v.Status.Credits)
			}
			if meta.FindStatusCondition(v.Status.Conditions, creditsv1alpha1.ConditionLowBalance) != nil {
				t.Errorf("a balance the API does not serve is judged against the low-balance threshold: %+v", v.Status.Conditions)
			}
			if len(v.Events) == 0 || v.Events[0].Type != "Warning" || v.Events[0].Reason != c.reason || v.Events[0].Message != cond.Message {
				t.Errorf("Events %+v; want a Warning %s with the condition's message", v.Events, c.reason)
			}
			settle(obj, v)
			if again := Validate(obj, nil, metav1.Now(), 20, recordOf(obj)); again.StatusChanged || len(again.Events) != 0 {
				t.Errorf("the same record judged again: changed %v, Events %+v; want neither", again.StatusChanged, again.Events)
			}
		})
	}
	t.Run("the largest balance, alone or with holds", func(t *testing.T) {
		for _, holds := range [][]creditsv1alpha1.Reservation{nil, {holdOf("h", 1)}} {
			obj := newObj(max - int64(len(holds)))
			obj.Spec.Reservations = holds
			if c := meta.FindStatusCondition(Validate(obj, nil, metav1.Now(), 0, recordOf(obj)).Status.Conditions, creditsv1alpha1.ConditionValid); c.Status != metav1.ConditionTrue {
				t.Errorf("%d available and %d holds: %+v; want Valid=True", obj.Spec.Credits, len(holds), c)
			}
		}
	})
}

// TestSettledOnStartJudgesTheWholeRecord: the start-up filter skips a judged, unchanged
// object, lets through one damaged or made untrusted while no replica ran (its status does
// not say so yet), and skips it again once its status says so (judging it again would
// change nothing).
func TestSettledOnStartJudgesTheWholeRecord(t *testing.T) {
	r := &UserCreditsReconciler{}
	obj := newObj(10)
	settle(obj, Validate(obj, nil, metav1.Now(), 0, recordOf(obj)))
	if !r.settled(obj) {
		t.Fatal("a judged, intact, unchanged object is not settled: the filter skips nothing")
	}
	for name, edit := range map[string]func(*creditsv1alpha1.UserCredits){
		"damaged closed holds": func(o *creditsv1alpha1.UserCredits) {
			o.Annotations = map[string]string{account.ClosedHoldsAnnotation: "garbage"}
		},
		"damaged key ledger": func(o *creditsv1alpha1.UserCredits) {
			o.Annotations = map[string]string{account.AppliedRequestsAnnotation: "garbage"}
		},
		"user ID the API refuses": func(o *creditsv1alpha1.UserCredits) { o.Spec.UserID = "user A" },
	} {
		edited := obj.DeepCopy()
		edit(edited) // the generation stays: only what the edit breaks can make it unsettled
		if r.settled(edited) {
			t.Errorf("%s, not yet reported: settled; want it reconciled", name)
		}
		settle(edited, Validate(edited, nil, metav1.Now(), 0, recordOf(edited)))
		if !r.settled(edited) {
			t.Errorf("%s, reported: not settled; want it skipped (judging it again changes nothing)", name)
		}
	}
}

// TestCRDBoundsAreTheModels: the generated CRD bounds balances and holds by the model's
// largest balance, and hold IDs by the model's rule, so kubectl cannot store most records
// the API would refuse.
func TestCRDBoundsAreTheModels(t *testing.T) {
	data, err := os.ReadFile("../config/crd/bases/credits.gitread.dev_usercredits.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	hold := spec.Properties["reservations"].Items.Schema
	for name, s := range map[string]apiextensionsv1.JSONSchemaProps{"spec.credits": spec.Properties["credits"], "spec.reservations[].credits": hold.Properties["credits"]} {
		if s.Maximum == nil || *s.Maximum != float64(account.MaxBalance) {
			t.Errorf("%s: maximum %v; want account.MaxBalance %d", name, s.Maximum, int64(account.MaxBalance))
		}
	}
	id := hold.Properties["id"]
	pattern, err := regexp.Compile(id.Pattern)
	if err != nil {
		t.Fatalf("spec.reservations[].id pattern %q: %v", id.Pattern, err)
	}
	for _, s := range []string{"h", "rsv_01J-abc", "a b", "a,b", "a;b", "é", "a\n", strings.Repeat("x", 64), strings.Repeat("x", 65)} {
		schema := pattern.MatchString(s) && len(s) >= int(*id.MinLength) && len(s) <= int(*id.MaxLength)
		if schema != account.ValidHoldID(s) {
			t.Errorf("hold ID %q: the schema says %v, the model %v", s, schema, account.ValidHoldID(s))
		}
	}
}

// TestUntrustedRecordIsInvalidWithAWarning: through the apiserver, a record the schema
// admits and the API refuses (the largest balance plus a hold) turns Valid=False/
// UntrustedRecord with a Warning Event and a count, and valid again once fixed.
func TestUntrustedRecordIsInvalidWithAWarning(t *testing.T) {
	ctx := context.Background()
	if err := k8sClient.Create(ctx, newUserCredits("untrusted", "user_Untrusted1", 10)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, newUserCredits("untrusted", "", 0)) })
	waitValid(t, "untrusted", metav1.ConditionTrue, creditsv1alpha1.ReasonBalanceValid)
	before := testutil.ToFloat64(metrics.ValidationFailures.WithLabelValues(creditsv1alpha1.ReasonUntrustedRecord))

	patch := fmt.Sprintf(`{"spec":{"credits":%d,"reservations":[{"id":"h","credits":1,"expiresAt":%q}]}}`,
		int64(account.MaxBalance), time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	if err := k8sClient.Patch(ctx, newUserCredits("untrusted", "", 0), client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
		t.Fatal(err)
	}
	obj := waitValid(t, "untrusted", metav1.ConditionFalse, creditsv1alpha1.ReasonUntrustedRecord)
	if obj.Status.Credits != 10 {
		t.Errorf("status.credits %d; want the last valid balance, 10", obj.Status.Credits)
	}
	if e := waitEvent(t, "untrusted", "Warning", creditsv1alpha1.ReasonUntrustedRecord); !strings.Contains(e.Note, "exceed the largest balance") {
		t.Errorf("Warning Event note %q does not say why", e.Note)
	}
	if d := testutil.ToFloat64(metrics.ValidationFailures.WithLabelValues(creditsv1alpha1.ReasonUntrustedRecord)) - before; d != 1 {
		t.Errorf("usercredits_validation_failures_total{UntrustedRecord} grew by %v, want 1", d)
	}

	if err := k8sClient.Patch(ctx, newUserCredits("untrusted", "", 0), client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"reservations":null}}`))); err != nil {
		t.Fatal(err)
	}
	if obj := waitValid(t, "untrusted", metav1.ConditionTrue, creditsv1alpha1.ReasonBalanceValid); obj.Status.Credits != account.MaxBalance {
		t.Errorf("fixed: status.credits %d; want %d", obj.Status.Credits, int64(account.MaxBalance))
	}
}
