package credits

import (
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/expiring"
	"github.com/gitread/usercredits-operator/internal/metrics"
)

// operationEvents are the operations that leave a Normal Event on the user's object;
// consumes and holds are too frequent for that, a purchase leaves CreditsPurchased and a
// CreditGrant's grant a CreditsGranted naming it (writer.done). The notes carry no amounts: repeated Events of one reason about one
// object form a series (below), which keeps its first note. Amounts are in the history
// (GET /api/credits/transactions) and the logs.
var operationEvents = map[account.OpKind]struct{ reason, note string }{
	account.OpSet:    {"CreditsSet", "balance set through the API"},
	account.OpGrant:  {"CreditsGranted", "credits granted through the API"},
	account.OpExpire: {"ReservationExpired", "an expired reservation returned its credits to the balance"},
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

// creditGrant is the related object of a CreditGrant's Event: the CreditGrant, so that each
// has an Event of its own, as each purchase does.
func creditGrant(namespace, name string) *corev1.ObjectReference {
	return &corev1.ObjectReference{APIVersion: creditsv1alpha1.GroupVersion.String(), Kind: "CreditGrant", Namespace: namespace, Name: name}
}

// reporter tells people about records the store cannot trust or could not read whole:
// an error log line and a Warning Event, once per state of the object (its resourceVersion)
// however often it is read.
type reporter struct {
	recorder events.EventRecorder
	log      logr.Logger
	seen     *expiring.Cache[string, struct{}]
}

func newReporter(recorder events.EventRecorder, log logr.Logger) *reporter {
	return &reporter{recorder: recorder, log: log, seen: expiring.NewCache[string, struct{}](10_000)}
}

// first reports whether (obj's state, what) has not been reported in the last minute.
func (r *reporter) first(obj *creditsv1alpha1.UserCredits, what string) bool {
	key, now := string(obj.UID)+"/"+obj.ResourceVersion+"/"+what, time.Now()
	if _, seen := r.seen.Get(key, now); seen {
		return false
	}
	r.seen.Put(key, struct{}{}, now.Add(time.Minute), now)
	return true
}

// untrusted reports a record the API refuses to serve or change.
func (r *reporter) untrusted(obj *creditsv1alpha1.UserCredits, user account.UserID, err error) {
	if !r.first(obj, "untrusted") {
		return
	}
	r.log.Error(err, "refusing to serve or change a balance", "object", obj.Name, "userID", user)
	if r.recorder != nil {
		r.recorder.Eventf(obj, nil, "Warning", "UntrustedRecord", "ServeBalance",
			"the credits API refused to serve or change user %q: %v", user, err)
	}
}

// damaged reports stored parts that could not be read: they were read as empty, and are
// written whole again by the next change of them.
func (r *reporter) damaged(obj *creditsv1alpha1.UserCredits, parts []string) {
	if len(parts) == 0 || !r.first(obj, "damaged") {
		return
	}
	r.log.Error(nil, "a record has parts that cannot be read; they are read as empty", "object", obj.Name, "parts", parts)
	if r.recorder != nil {
		r.recorder.Eventf(eventSubject(obj), nil, "Warning", "DamagedRecord", "ReadRecord",
			"%s cannot be read (edited by hand?): read as empty, and rewritten by the next change", strings.Join(parts, ", "))
	}
}

// wrote logs and records the Events of the operations a write applied, and of the credits
// it removed from lots (expired, voided), which it also counts.
func (r *reporter) wrote(written *creditsv1alpha1.UserCredits, applied []account.Operation, removed []account.Removal) {
	for _, rm := range removed {
		r.log.Info("credits removed from a lot", "userID", written.Spec.UserID, "lot", rm.Lot, "credits", rm.Credits, "why", rm.Why)
		if rm.Why == account.RemovedExpired {
			metrics.CreditsExpired.Add(float64(rm.Credits))
		}
		if r.recorder != nil && rm.Credits > 0 {
			reason := map[string]string{account.RemovedExpired: "CreditsExpired", account.RemovedVoided: "CreditsVoided"}[rm.Why]
			r.recorder.Eventf(eventSubject(written), nil, "Normal", reason, "UpdateBalance", "%s of lot %s %s", account.CountCredits(rm.Credits), rm.Lot, rm.Why)
		}
	}
	for i, op := range applied {
		if op.Kind == account.OpExpire && op.ReservationID == "" {
			continue // the lots' expiry: its removals above
		}
		if op.Purchase != "" {
			r.log.Info("balance changed", "userID", written.Spec.UserID, "op", account.KindPurchase, "amount", op.Amount, "checkoutSession", op.Purchase, "batch", len(applied), "index", i)
		} else {
			r.log.Info("balance changed", "userID", written.Spec.UserID, "op", op.Kind, "amount", op.Amount, "batch", len(applied), "index", i)
		}
		if r.recorder == nil {
			continue
		}
		if op.Purchase != "" {
			r.recorder.Eventf(eventSubject(written), checkoutSession(op.Purchase), "Normal", "CreditsPurchased", "UpdateBalance",
				"%s purchased: Stripe Checkout Session %s", account.CountCredits(op.Amount), op.Purchase)
			continue
		}
		if op.Kind == account.OpGrant && op.Terms.Source == account.SourceGitOps {
			// The lot keeps the ID the store picked for it (a CreditGrant's lot never joins another).
			r.recorder.Eventf(eventSubject(written), creditGrant(written.Namespace, op.Terms.Reference), "Normal", "CreditsGranted", "UpdateBalance",
				"%s granted by CreditGrant %s: lot %s", account.CountCredits(op.Amount), op.Terms.Reference, op.Terms.ID)
			continue
		}
		if e, ok := operationEvents[op.Kind]; ok {
			r.recorder.Eventf(eventSubject(written), nil, "Normal", e.reason, "UpdateBalance", "%s", e.note)
		}
	}
}
