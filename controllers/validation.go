package controllers

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// Event is a Kubernetes Event the controller should record about an object.
type Event struct {
	Type    string // corev1.EventTypeNormal or corev1.EventTypeWarning
	Reason  string
	Message string
}

// Verdict is what validation concludes about one UserCredits object.
type Verdict struct {
	// Status is the status the object should have.
	Status creditsv1alpha1.UserCreditsStatus
	// StatusChanged reports whether Status differs from the object's current status,
	// so callers write only real changes (no status churn on resyncs).
	StatusChanged bool
	// Events are what a person should hear about: the Valid condition changing, and the
	// balance crossing the low-balance threshold.
	Events []Event
}

// Record is what the controller reads of obj's account besides its balance (account.Decode).
type Record struct {
	// Held is the sum of the open holds.
	Held int64
	// Damage lists the stored parts that could not be read (edited by hand).
	Damage []string
	// NextLotExpiry is when the next lot with credits left expires, and ExpiringCredits how
	// many of its credits remain to expire then; zero when none expires.
	NextLotExpiry   time.Time
	ExpiringCredits int64
	// Untrusted is why the credits API refuses to serve or change the record (account.Decode's
	// error, wrapping account.ErrUntrusted); nil when it serves it.
	Untrusted error
}

// RecordOf is the Record of an account as account.Decode returned it. The controller judges
// by the account model's own invariants, never by a copy of them, so that it shows
// Valid=True only for what the API serves.
func RecordOf(acct account.Account, decodeErr error) Record {
	next, credits := acct.NextLotExpiry()
	return Record{Held: acct.Held(), Damage: acct.Damage(), NextLotExpiry: next, ExpiringCredits: credits, Untrusted: decodeErr}
}

// Validate decides the status of obj. peers are the names of other objects in the same
// namespace that claim obj's spec.userID; now is the time to record for a balance change
// (a balance as `kubectl credits import` wrote it records its time at the source instead,
// account.ImportedAt); lowBalance is the operator's low-balance threshold (0: none unless
// the object sets one); record is what its account holds besides the balance (RecordOf).
// A balance the API does not serve (negative, contested, of a user ID no request can name,
// or of an untrusted record) never reaches status.credits, which keeps the last valid
// value, so readers of status never see a rejected balance.
func Validate(obj *creditsv1alpha1.UserCredits, peers []string, now metav1.Time, lowBalance int64, record Record) Verdict {
	status := *obj.Status.DeepCopy()
	status.ObservedGeneration = obj.Generation
	status.Reserved = record.Held
	status.NextExpiry, status.ExpiringCredits = nil, record.ExpiringCredits
	if !record.NextLotExpiry.IsZero() {
		status.NextExpiry = &metav1.Time{Time: record.NextLotExpiry}
	}

	cond := metav1.Condition{Type: creditsv1alpha1.ConditionValid, ObservedGeneration: obj.Generation, LastTransitionTime: now}
	switch {
	case len(peers) > 0:
		cond.Status = metav1.ConditionFalse
		cond.Reason = creditsv1alpha1.ReasonDuplicateUserID
		cond.Message = fmt.Sprintf("userID %q is also claimed by %s in this namespace; the balance is not served until only one object remains",
			obj.Spec.UserID, strings.Join(peers, ", "))
	case obj.Spec.Credits < 0:
		cond.Status = metav1.ConditionFalse
		cond.Reason = creditsv1alpha1.ReasonNegativeBalance
		cond.Message = fmt.Sprintf("spec.credits is %d but balances cannot be negative; status.credits keeps the last valid balance %d",
			obj.Spec.Credits, status.Credits)
	case !account.ValidUserID(obj.Spec.UserID):
		cond.Status = metav1.ConditionFalse
		cond.Reason = creditsv1alpha1.ReasonInvalidUserID
		cond.Message = fmt.Sprintf("spec.userID %q is not a user ID the credits API accepts (1-255 bytes of UTF-8 without control characters, whitespace or invisible characters): no request can name it; status.credits keeps the last valid balance %d",
			obj.Spec.UserID, status.Credits)
	case record.Untrusted != nil:
		cond.Status = metav1.ConditionFalse
		cond.Reason = creditsv1alpha1.ReasonUntrustedRecord
		cond.Message = fmt.Sprintf("the credits API serves and changes nothing for this user until a person fixes the record (%v); status.credits keeps the last valid balance %d",
			record.Untrusted, status.Credits)
	default:
		cond.Status = metav1.ConditionTrue
		cond.Reason = creditsv1alpha1.ReasonBalanceValid
		cond.Message = fmt.Sprintf("balance of %s accepted", account.CountCredits(obj.Spec.Credits))
		if status.Credits != obj.Spec.Credits || status.UpdatedAt == nil {
			status.Credits = obj.Spec.Credits
			status.UpdatedAt = &now
			if at, ok := account.ImportedAt(obj); ok { // the balance as imported: when it changed at the source
				status.UpdatedAt = &metav1.Time{Time: at}
			}
		}
	}

	previous := meta.FindStatusCondition(obj.Status.Conditions, creditsv1alpha1.ConditionValid)
	meta.SetStatusCondition(&status.Conditions, cond)
	var events []Event
	if e := eventFor(previous, cond); e != nil {
		events = append(events, *e)
	}
	if cond.Status == metav1.ConditionTrue {
		if e := lowBalanceCondition(obj, &status, now, lowBalance); e != nil {
			events = append(events, *e)
		}
	}
	if e := intactCondition(obj, &status, now, record.Damage); e != nil {
		events = append(events, *e)
	}
	return Verdict{
		Status:        status,
		StatusChanged: !equality.Semantic.DeepEqual(obj.Status, status),
		Events:        events,
	}
}

// lowBalanceThreshold is the threshold that applies to obj, and whether one does.
func lowBalanceThreshold(obj *creditsv1alpha1.UserCredits, operatorDefault int64) (int64, bool) {
	if obj.Spec.LowBalanceThreshold != nil {
		return *obj.Spec.LowBalanceThreshold, true
	}
	return operatorDefault, operatorDefault > 0
}

// lowBalanceCondition sets status's LowBalance condition for obj's available balance, or
// removes it when no threshold applies, and returns the Event of a crossing: a Warning
// when the balance falls to or below the threshold, a Normal one when it rises above.
// Nothing is said when it stays on one side.
func lowBalanceCondition(obj *creditsv1alpha1.UserCredits, status *creditsv1alpha1.UserCreditsStatus, now metav1.Time, operatorDefault int64) *Event {
	threshold, applies := lowBalanceThreshold(obj, operatorDefault)
	if !applies {
		meta.RemoveStatusCondition(&status.Conditions, creditsv1alpha1.ConditionLowBalance)
		return nil
	}
	previous := meta.FindStatusCondition(obj.Status.Conditions, creditsv1alpha1.ConditionLowBalance)
	cond := metav1.Condition{Type: creditsv1alpha1.ConditionLowBalance, ObservedGeneration: obj.Generation, LastTransitionTime: now,
		Status: metav1.ConditionFalse, Reason: creditsv1alpha1.ReasonAboveThreshold,
		Message: fmt.Sprintf("%s available, above the low-balance threshold of %d", account.CountCredits(obj.Spec.Credits), threshold)}
	if obj.Spec.Credits <= threshold {
		cond.Status, cond.Reason = metav1.ConditionTrue, creditsv1alpha1.ReasonAtOrBelowThreshold
		cond.Message = fmt.Sprintf("%s available, at or below the low-balance threshold of %d", account.CountCredits(obj.Spec.Credits), threshold)
	}
	meta.SetStatusCondition(&status.Conditions, cond)
	switch {
	case cond.Status == metav1.ConditionTrue && (previous == nil || previous.Status != metav1.ConditionTrue):
		return &Event{Type: "Warning", Reason: "LowBalance", Message: cond.Message}
	case cond.Status == metav1.ConditionFalse && previous != nil && previous.Status == metav1.ConditionTrue:
		return &Event{Type: "Normal", Reason: "BalanceRestored", Message: cond.Message}
	}
	return nil
}

// eventFor reports problems each time their description changes, and recovery once,
// but not the routine acceptance of a valid balance (which would flood Events on every spend).
func eventFor(previous *metav1.Condition, current metav1.Condition) *Event {
	if current.Status == metav1.ConditionFalse {
		if previous != nil && previous.Status == current.Status && previous.Reason == current.Reason && previous.Message == current.Message {
			return nil
		}
		return &Event{Type: "Warning", Reason: current.Reason, Message: current.Message}
	}
	if previous != nil && previous.Status == metav1.ConditionFalse {
		return &Event{Type: "Normal", Reason: current.Reason, Message: current.Message}
	}
	return nil
}

// intactCondition sets status's Intact condition to False when stored parts of the account
// could not be read (they were read as empty: docs/guarantees.md says what each guards),
// and removes it once they read again: a Warning Event names them, a Normal one says they
// were repaired. An intact record carries no Intact condition at all.
func intactCondition(obj *creditsv1alpha1.UserCredits, status *creditsv1alpha1.UserCreditsStatus, now metav1.Time, damage []string) *Event {
	previous := meta.FindStatusCondition(obj.Status.Conditions, creditsv1alpha1.ConditionIntact)
	if len(damage) == 0 {
		meta.RemoveStatusCondition(&status.Conditions, creditsv1alpha1.ConditionIntact)
		if previous != nil {
			return &Event{Type: "Normal", Reason: creditsv1alpha1.ReasonRepaired, Message: "every stored part of the account reads again"}
		}
		return nil
	}
	cond := metav1.Condition{Type: creditsv1alpha1.ConditionIntact, Status: metav1.ConditionFalse, ObservedGeneration: obj.Generation,
		LastTransitionTime: now, Reason: creditsv1alpha1.ReasonDamagedParts,
		Message: fmt.Sprintf("cannot read %s (edited by hand?): read as empty, rewritten by the next change of them", strings.Join(damage, ", "))}
	meta.SetStatusCondition(&status.Conditions, cond)
	if previous == nil || previous.Message != cond.Message {
		return &Event{Type: "Warning", Reason: creditsv1alpha1.ReasonDamagedParts, Message: cond.Message}
	}
	return nil
}
