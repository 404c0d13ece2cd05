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
		r.recorder.Eventf(obj, nil, "Warning", creditsv1alpha1.ReasonUntrustedRecord, "ServeBalance",
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

// wrote logs and records the Events of the operations a write applied, and of the changes
// it made to lots (credits expired, voided, refunded, disputed, reinstated), which it also
// counts.
func (r *reporter) wrote(written *creditsv1alpha1.UserCredits, applied []account.Operation, changes []account.LotChange) {
	for _, c := range changes {
		r.lotChanged(written, c)
	}
	for i, op := range applied {
		switch {
		case op.Kind == account.OpExpire && op.ReservationID == "":
			continue // the lots' expiry: its changes above
		case op.Kind == account.OpRefund || op.Kind == account.OpDispute:
			r.log.Info("Stripe payment followed", "userID", written.Spec.UserID, "op", op.Kind, "payment", op.Payment, "amount", op.Charge.Amount,
				"refunded", op.Charge.Refunded, "dispute", op.Charge.Dispute, "disputeStatus", op.Charge.DisputeStatus)
			continue // what it did to the lot: its changes above
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

// lotEvents are the Events of lots' changes: their type and reason.
var lotEvents = map[string]struct{ kind, reason string }{
	account.RemovedExpired: {"Normal", "CreditsExpired"},
	account.RemovedVoided:  {"Normal", "CreditsVoided"},
	account.Refunded:       {"Normal", "CreditsRefunded"},
	account.Disputed:       {"Warning", "CreditsDisputed"},
	account.Reinstated:     {"Normal", "CreditsReinstated"},
	account.LostDispute:    {"Warning", "DisputeLost"},
}

// lotChanged logs, counts and records the Event of one change of a lot. A refund's or
// dispute's Event names the purchase's Checkout Session as its related object, so that each
// purchase's refunds form a series of their own.
func (r *reporter) lotChanged(written *creditsv1alpha1.UserCredits, c account.LotChange) {
	r.log.Info("lot changed", "userID", written.Spec.UserID, "lot", c.Lot, "credits", c.Credits, "why", c.Why,
		"checkoutSession", c.Reference, "unrecoverable", c.Unrecoverable, "fromDispute", c.FromDispute, "alreadyRemoved", c.Removed)
	switch c.Why {
	case account.RemovedExpired:
		metrics.CreditsExpired.Add(float64(c.Credits))
	case account.Refunded:
		metrics.RefundUnrecovered.Add(float64(c.Unrecoverable))
	}
	if r.recorder == nil {
		return
	}
	var related *corev1.ObjectReference
	if c.Reference != "" && c.Reference != c.Lot {
		related = checkoutSession(c.Reference)
	}
	subject, e := eventSubject(written), lotEvents[c.Why]
	switch c.Why {
	case account.RemovedExpired, account.RemovedVoided:
		if c.Credits > 0 {
			r.recorder.Eventf(subject, nil, e.kind, e.reason, "UpdateBalance", "%s of lot %s %s", account.CountCredits(c.Credits), c.Lot, c.Why)
		}
	case account.Refunded:
		switch {
		case c.Removed > 0: // voided or expired: gone already, not spent (no RefundUnrecovered for them)
			r.recorder.Eventf(subject, related, e.kind, e.reason, "UpdateBalance",
				"%s taken back from lot %s, %s of the refund's share voided or expired already (not spent): a Stripe refund of Checkout Session %s",
				account.CountCredits(c.Credits), c.Lot, account.CountCredits(c.Removed), c.Reference)
		case c.Credits > 0:
			r.recorder.Eventf(subject, related, e.kind, e.reason, "UpdateBalance", "%s taken back from lot %s: a Stripe refund of Checkout Session %s",
				account.CountCredits(c.Credits), c.Lot, c.Reference)
		}
		if c.Unrecoverable > 0 {
			r.recorder.Eventf(subject, related, "Warning", "RefundUnrecovered", "UpdateBalance",
				"%s refunded through Stripe (Checkout Session %s) had been spent already: they cannot be taken back",
				account.CountCredits(c.Unrecoverable), c.Reference)
		}
	case account.Disputed:
		r.recorder.Eventf(subject, related, e.kind, e.reason, "UpdateBalance", "%s taken from lot %s: a Stripe dispute of Checkout Session %s",
			account.CountCredits(c.Credits), c.Lot, c.Reference)
	case account.Reinstated:
		r.recorder.Eventf(subject, related, e.kind, e.reason, "UpdateBalance", "%s returned to lot %s: the Stripe dispute of Checkout Session %s was won",
			account.CountCredits(c.Credits), c.Lot, c.Reference)
	case account.LostDispute:
		r.recorder.Eventf(subject, related, e.kind, e.reason, "UpdateBalance", "the Stripe dispute of Checkout Session %s was lost: the credits it took stay taken",
			c.Reference)
	}
}
