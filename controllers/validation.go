package controllers

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
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
	// Event is set when the Valid condition changes in a way a person should hear about.
	Event *Event
}

// Validate decides the status of obj. peers are the names of other objects in the same
// namespace that claim obj's spec.userID; now is the time to record for a balance change.
// A negative or contested balance never reaches status.credits, which keeps the last
// valid value, so readers of status never see a rejected balance.
func Validate(obj *creditsv1alpha1.UserCredits, peers []string, now metav1.Time) Verdict {
	status := *obj.Status.DeepCopy()
	status.ObservedGeneration = obj.Generation

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
	default:
		cond.Status = metav1.ConditionTrue
		cond.Reason = creditsv1alpha1.ReasonBalanceValid
		cond.Message = fmt.Sprintf("balance of %d credits accepted", obj.Spec.Credits)
		if status.Credits != obj.Spec.Credits || status.UpdatedAt == nil {
			status.Credits = obj.Spec.Credits
			status.UpdatedAt = &now
		}
	}

	previous := meta.FindStatusCondition(obj.Status.Conditions, creditsv1alpha1.ConditionValid)
	meta.SetStatusCondition(&status.Conditions, cond)

	return Verdict{
		Status:        status,
		StatusChanged: !equality.Semantic.DeepEqual(obj.Status, status),
		Event:         eventFor(previous, cond),
	}
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
