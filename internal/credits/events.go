package credits

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// operationEvents are the operations that leave a Normal Event on the user's object;
// consumes and holds are too frequent for that, and a purchase leaves CreditsPurchased
// (Store.done). The notes carry no amounts: repeated Events of one reason about one object
// form a series (below), which keeps its first note. Amounts are in the history (GET
// /api/credits/transactions) and the logs.
var operationEvents = map[OpKind]struct{ reason, note string }{
	OpSet:    {"CreditsSet", "balance set through the API"},
	OpGrant:  {"CreditsGranted", "credits granted through the API"},
	OpExpire: {"ReservationExpired", "an expired reservation returned its credits to the balance"},
}

// eventSubject is obj as its Events refer to it: without a resourceVersion, so that the
// events library counts repeated Events of one reason about one user in one series (one
// create, then at most a patch every few minutes) instead of creating an Event object for
// every write: a user's sets never cost the apiserver more than their own writes.
func eventSubject(obj *creditsv1alpha1.UserCredits) *creditsv1alpha1.UserCredits {
	return &creditsv1alpha1.UserCredits{TypeMeta: obj.TypeMeta, ObjectMeta: metav1.ObjectMeta{
		Name: obj.Name, Namespace: obj.Namespace, UID: obj.UID}}
}

// checkoutSession is the related object of a purchase's Event: its Stripe Checkout
// Session. The related object is part of what makes Events one series, so each session
// has an Event of its own, whose note (the amount, the session) stays its own. Purchases
// are paid for: one Event object each costs the apiserver nothing to speak of.
func checkoutSession(id string) *corev1.ObjectReference {
	return &corev1.ObjectReference{APIVersion: "stripe.com/v1", Kind: "CheckoutSession", Name: id}
}
