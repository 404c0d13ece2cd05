// Package payments turns paid Stripe Checkout Sessions into credits: a webhook endpoint
// that verifies Stripe's signature with stripe-go's webhook package and grants each paid
// session exactly once, keyed by the session ID, recorded as a purchase naming it.
package payments

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/go-logr/logr"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/httpapi/respond"
	"github.com/gitread/usercredits-operator/internal/metrics"
)

// maxPayloadBytes bounds what is read of a webhook; Stripe's events are far smaller.
const maxPayloadBytes = 1 << 20

// Granter grants credits exactly once per Idempotency-Key (credits.Store).
type Granter interface {
	Apply(ctx context.Context, user account.UserID, op account.Operation) (account.Result, error)
}

// Webhook serves POST /api/webhooks/stripe. The request's context bounds the grant's
// storage work (the API's --api-request-timeout).
type Webhook struct {
	Settings
	Store Granter
	Log   logr.Logger
}

// Bodies Stripe reads; only the status matters to it.
var (
	bodyReceived         = []byte(`{"received":true}`)
	bodyInvalidSignature = []byte(`{"error":"Invalid signature"}`)
	bodyGrantFailed      = []byte(`{"error":"Error updating credits"}`)
)

// delivery is a Stripe event's envelope; its object is decoded once, as its type says.
type delivery struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

// checkoutSession holds the fields of a Checkout Session the webhook reads, whatever the
// event's API version: nothing else of the payload is relied on.
type checkoutSession struct {
	ID                string            `json:"id"`
	ClientReferenceID string            `json:"client_reference_id"`
	PaymentStatus     string            `json:"payment_status"`
	AmountTotal       *int64            `json:"amount_total"`
	Metadata          map[string]string `json:"metadata"`
}

// ServeHTTP answers one delivery (see receive). httpapi mounts it on POST only: its route
// table answers any other method 405 like every other route, and respond.JSON is the one
// writer of both.
func (wh *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status, body := wh.receive(w, r)
	respond.JSON(w, status, body)
}

// receive verifies the signature, then grants a paid session's credits; it returns the
// answer's status and body.
func (wh *Webhook) receive(w http.ResponseWriter, r *http.Request) (int, []byte) {
	payload, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPayloadBytes))
	if err != nil {
		count("invalid_signature")
		return http.StatusBadRequest, bodyInvalidSignature
	}
	// Verified against the secret, within stripe-go's default 5-minute tolerance; events
	// of any API version are accepted, as only the fields read here are relied on. The
	// payload is then decoded once: the envelope, and the object as what its type names.
	err = webhook.ValidatePayloadWithTolerance(payload, r.Header.Get("Stripe-Signature"), wh.WebhookSecret, webhook.DefaultTolerance)
	var event delivery
	if err == nil {
		err = json.Unmarshal(payload, &event)
	}
	if err != nil {
		count("invalid_signature")
		wh.Log.V(1).Info("refused a Stripe webhook", "reason", err.Error(), "remote", r.RemoteAddr)
		return http.StatusBadRequest, bodyInvalidSignature
	}
	var session checkoutSession
	paid := false
	switch event.Type {
	case "checkout.session.completed", "checkout.session.async_payment_succeeded":
		if len(event.Data.Object) == 0 || json.Unmarshal(event.Data.Object, &session) != nil {
			wh.unassignable(event.ID, session, "the event holds no Checkout Session")
			return http.StatusOK, bodyReceived
		}
		// async_payment_succeeded is sent once the delayed payment is paid.
		paid = session.PaymentStatus == "paid" || event.Type == "checkout.session.async_payment_succeeded"
	}
	if !paid {
		count("ignored")
		return http.StatusOK, bodyReceived
	}
	amount, reason := wh.credits(session)
	if reason != "" {
		wh.unassignable(event.ID, session, reason)
		return http.StatusOK, bodyReceived
	}
	// A grant, keyed by the session so that it applies once, recorded as the purchase of it.
	op := account.Operation{Kind: account.OpGrant, Amount: amount, IdempotencyKey: GrantKey(session.ID), Purchase: session.ID}
	res, err := wh.Store.Apply(r.Context(), account.UserID(session.ClientReferenceID), op) // checked by credits()
	switch {
	case errors.Is(err, account.ErrInvalidUserID), errors.Is(err, account.ErrIdempotencyKeyReused), errors.Is(err, account.ErrBalanceOverflow),
		errors.Is(err, account.ErrTooManyLots):
		wh.unassignable(event.ID, session, err.Error())
	case err != nil:
		// Stripe retries a 5xx for three days; the grant key makes the retry apply once.
		count("error")
		wh.Log.Error(err, "granting a paid Checkout Session failed; Stripe will retry", "session", session.ID, "event", event.ID)
		return http.StatusInternalServerError, bodyGrantFailed
	case res.Replayed:
		count("replayed")
	default:
		count("granted")
		wh.Log.Info("granted a paid Checkout Session", "session", session.ID, "event", event.ID, "userID", session.ClientReferenceID, "credits", amount)
	}
	return http.StatusOK, bodyReceived
}

// GrantKey is the Idempotency-Key of a session's grant: both event types and every
// redelivery of one session grant once.
func GrantKey(sessionID string) string { return "stripe-checkout:" + sessionID }

// credits is what a paid session buys: metadata.credits when present, else amount_total at
// the price per credit; reason says why it cannot be credited.
func (wh *Webhook) credits(s checkoutSession) (int64, string) {
	switch {
	case s.ID == "":
		return 0, "the session has no id"
	case !account.ValidReference(s.ID):
		return 0, "the session id is not a Stripe ID (letters, digits, '_', '-')"
	case s.ClientReferenceID == "":
		return 0, "the session has no client_reference_id (the Clerk user ID)"
	case !account.ValidUserID(s.ClientReferenceID):
		return 0, "client_reference_id is not a valid user ID"
	}
	if text, ok := s.Metadata["credits"]; ok {
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil || n < 1 || n > account.MaxBalance {
			return 0, "metadata.credits is not a whole number of credits"
		}
		return n, ""
	}
	switch {
	case s.AmountTotal == nil || *s.AmountTotal <= 0:
		return 0, "the session has no amount_total"
	case *s.AmountTotal%wh.PricePerCreditCents != 0:
		return 0, "amount_total is not a whole number of credits at the price per credit"
	}
	return *s.AmountTotal / wh.PricePerCreditCents, ""
}

// unassignable reports a paid session that cannot be credited: it must not vanish.
func (wh *Webhook) unassignable(eventID string, s checkoutSession, reason string) {
	count("unassignable")
	wh.Log.Error(nil, "a paid Stripe Checkout Session cannot be credited: fix it, then resend the event (stripe events resend)",
		"session", s.ID, "event", eventID, "reason", reason, "clientReferenceID", s.ClientReferenceID)
}

func count(result string) { metrics.StripeEvents.WithLabelValues("checkout.session", result).Inc() }
