// Package payments follows Stripe Checkout purchases from payment to refund: a webhook
// endpoint that verifies Stripe's signature with stripe-go's webhook package, grants each
// paid Checkout Session exactly once as a purchase naming it (checkout.go), and takes
// credits back when the payment is refunded or disputed, or returns them when a dispute is
// won (charges.go). Each event is decoded once: its envelope, then its object as the
// stripe-go type its event type names.
package payments

import (
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/go-logr/logr"
	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/httpapi/respond"
	"github.com/gitread/usercredits-operator/internal/metrics"
)

// maxPayloadBytes bounds what is read of a webhook; Stripe's events are far smaller.
const maxPayloadBytes = 1 << 20

// Store is where the webhook's operations go (credits.Store).
type Store interface {
	// Apply grants credits exactly once per Idempotency-Key.
	Apply(ctx context.Context, user account.UserID, op account.Operation) (account.Result, error)
	// FollowPayment applies a refund or dispute to the user whose purchase lot names
	// op.Payment; account.ErrPaymentNotFound when none does.
	FollowPayment(ctx context.Context, op account.Operation) (account.UserID, account.Result, error)
	// EarlyCharge is what refunds and disputes of payment pi that matched no purchase said
	// of it (zero for none): a purchase of it carries them.
	EarlyCharge(ctx context.Context, pi string) (account.ChargeState, error)
}

// Webhook serves POST /api/webhooks/stripe. The request's context bounds the storage work
// (the API's --api-request-timeout).
type Webhook struct {
	Settings
	Store Store
	Log   logr.Logger
}

// Bodies Stripe reads; only the status matters to it.
var (
	bodyReceived         = []byte(`{"received":true}`)
	bodyInvalidSignature = []byte(`{"error":"Invalid signature"}`)
	bodyGrantFailed      = []byte(`{"error":"Error updating credits"}`)
)

// Event types the webhook acts on or counts by name (every other type is counted as
// "other"): docs/stripe.md has what each does.
const (
	evCompleted         = "checkout.session.completed"
	evAsyncSucceeded    = "checkout.session.async_payment_succeeded"
	evAsyncFailed       = "checkout.session.async_payment_failed"
	evExpired           = "checkout.session.expired"
	evChargeRefunded    = "charge.refunded"
	evRefundCreated     = "refund.created"
	evRefundUpdated     = "refund.updated"
	evDisputeCreated    = "charge.dispute.created"
	evDisputeClosed     = "charge.dispute.closed"
	evDisputeReinstated = "charge.dispute.funds_reinstated"
	evDisputeWithdrawn  = "charge.dispute.funds_withdrawn"
	evDisputeUpdated    = "charge.dispute.updated"
	typeOther           = "other"   // the type label of events of any other type
	typeUnknown         = "unknown" // the type label of deliveries whose signature failed
)

// Results of a delivery: the result label of usercredits_stripe_events_total
// (docs/metrics.md).
const (
	resultGranted      = "granted"      // a paid session's credits were granted
	resultReplayed     = "replayed"     // nothing new: a redelivery, or an older state than one applied
	resultPending      = "pending"      // a completed session whose payment is still on its way
	resultIgnored      = "ignored"      // an event that changes no balance
	resultUnassignable = "unassignable" // a paid session that cannot be credited
	resultRefunded     = "refunded"     // a purchase's lot followed a refund
	resultDisputed     = "disputed"     // a dispute took a purchase's credits
	resultReinstated   = "reinstated"   // a won dispute returned them
	resultDisputeLost  = "dispute_lost" // a lost dispute keeps them
	resultUnmatched    = "unmatched"    // a refund or dispute of a payment no lot names
	resultInvalid      = "invalid"      // an event whose object cannot be read
	resultError        = "error"        // the cluster could not be written: Stripe retries
	resultBadSignature = "invalid_signature"
)

// delivery is a Stripe event's envelope; its object is decoded once, as its type says.
type delivery struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

// ServeHTTP answers one delivery (see receive). httpapi mounts it on POST only: its route
// table answers any other method 405 like every other route, and respond.JSON is the one
// writer of both.
func (wh *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status, body := wh.receive(w, r)
	respond.JSON(w, status, body)
}

// receive verifies the signature, then acts on the event as its type says; it returns the
// answer's status and body. Everything but a failure to write the cluster is answered
// 200: a 5xx makes Stripe retry for days, then disable the endpoint.
func (wh *Webhook) receive(w http.ResponseWriter, r *http.Request) (int, []byte) {
	payload, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPayloadBytes))
	if err != nil {
		count(typeUnknown, resultBadSignature)
		return http.StatusBadRequest, bodyInvalidSignature
	}
	// Verified against the secret, within stripe-go's default 5-minute tolerance; events
	// of any API version are accepted, as only fields every version has are relied on.
	err = webhook.ValidatePayloadWithTolerance(payload, r.Header.Get("Stripe-Signature"), wh.WebhookSecret, webhook.DefaultTolerance)
	var event delivery
	if err == nil {
		err = json.Unmarshal(payload, &event)
	}
	if err != nil {
		count(typeUnknown, resultBadSignature)
		wh.Log.V(1).Info("refused a Stripe webhook", "reason", err.Error(), "remote", r.RemoteAddr)
		return http.StatusBadRequest, bodyInvalidSignature
	}
	result := wh.act(r.Context(), event)
	count(typeLabel(event.Type), result)
	if result == resultError {
		return http.StatusInternalServerError, bodyGrantFailed
	}
	return http.StatusOK, bodyReceived
}

// act does what event asks and says what came of it.
func (wh *Webhook) act(ctx context.Context, event delivery) string {
	switch event.Type {
	case evCompleted, evAsyncSucceeded:
		var s stripe.CheckoutSession
		if decode(event, &s) != nil {
			wh.unassignable(event, &s, "the event holds no Checkout Session")
			return resultUnassignable
		}
		return wh.checkout(ctx, event, &s)
	case evAsyncFailed, evExpired:
		var s stripe.CheckoutSession
		_ = decode(event, &s) // for the log line only
		wh.Log.Info("a Checkout Session was not paid: nothing granted", "event", event.ID, "type", event.Type, "session", s.ID, "userID", s.ClientReferenceID)
		return resultIgnored
	case evChargeRefunded:
		var c stripe.Charge
		if decode(event, &c) != nil {
			return wh.invalid(event, "the event holds no Charge")
		}
		return wh.refund(ctx, event, &c)
	case evDisputeCreated, evDisputeClosed, evDisputeReinstated:
		var d stripe.Dispute
		if decode(event, &d) != nil {
			return wh.invalid(event, "the event holds no Dispute")
		}
		return wh.dispute(ctx, event, &d)
	}
	// refund.created/updated carry one refund, not the charge's cumulative amount refunded:
	// charge.refunded, sent with each, is what the lot follows.
	return resultIgnored
}

// decode reads event's object into v (a stripe-go type).
func decode(event delivery, v any) error {
	if len(event.Data.Object) == 0 {
		return io.ErrUnexpectedEOF
	}
	return json.Unmarshal(event.Data.Object, v)
}

// typeLabel is the type label of an event of type t: t itself for the types the webhook
// knows, "other" for the rest, so that the label's values stay few whatever is sent.
func typeLabel(t string) string {
	switch t {
	case evCompleted, evAsyncSucceeded, evAsyncFailed, evExpired, evChargeRefunded, evRefundCreated, evRefundUpdated,
		evDisputeCreated, evDisputeClosed, evDisputeReinstated, evDisputeWithdrawn, evDisputeUpdated:
		return t
	}
	return typeOther
}

// invalid reports an event whose object cannot be read as its type says.
func (wh *Webhook) invalid(event delivery, reason string) string {
	wh.Log.Error(nil, "a Stripe event cannot be read: nothing done", "event", event.ID, "type", event.Type, "reason", reason)
	return resultInvalid
}

func count(eventType, result string) { metrics.StripeEvents.WithLabelValues(eventType, result).Inc() }
