package payments

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/metrics"
)

// recordingStore records operations instead of storing them; follow answers refunds and
// disputes.
type recordingStore struct {
	ops    []account.Operation
	follow func(account.Operation) (account.Result, error)
	// early answers EarlyCharge: each read takes the next (the last one stays).
	early []account.ChargeState
}

func (r *recordingStore) Apply(_ context.Context, _ account.UserID, op account.Operation) (account.Result, error) {
	r.ops = append(r.ops, op)
	return account.Result{Credits: op.Amount}, nil
}

func (r *recordingStore) FollowPayment(_ context.Context, op account.Operation) (account.UserID, account.Result, error) {
	r.ops = append(r.ops, op)
	if r.follow == nil {
		return "", account.Result{}, account.ErrPaymentNotFound
	}
	res, err := r.follow(op)
	return "user_A", res, err
}

func (r *recordingStore) EarlyCharge(context.Context, string) (account.ChargeState, error) {
	if len(r.early) == 0 {
		return account.ChargeState{}, nil
	}
	c := r.early[0]
	if len(r.early) > 1 {
		r.early = r.early[1:]
	}
	return c, nil
}

func TestCreditsOfASession(t *testing.T) {
	wh := &Webhook{Settings: Settings{PricePerCreditCents: 125, CheckoutCurrency: "usd"}}
	session := func(mutate func(s *stripe.CheckoutSession)) *stripe.CheckoutSession {
		s := &stripe.CheckoutSession{ID: "cs", ClientReferenceID: "user_A", Currency: stripe.CurrencyUSD, AmountSubtotal: 1250, AmountTotal: 1250}
		mutate(s)
		return s
	}
	for name, c := range map[string]struct {
		s       *stripe.CheckoutSession
		credits int64
		ok      bool
	}{
		"amount_subtotal":                  {session(func(*stripe.CheckoutSession) {}), 10, true},
		"tax and a coupon: the subtotal":   {session(func(s *stripe.CheckoutSession) { s.AmountTotal = 1133 }), 10, true},
		"a 100 % coupon":                   {session(func(s *stripe.CheckoutSession) { s.AmountTotal = 0 }), 10, true},
		"metadata wins":                    {session(func(s *stripe.CheckoutSession) { s.Metadata = map[string]string{"credits": "3"} }), 3, true},
		"metadata wins in any currency":    {session(func(s *stripe.CheckoutSession) { s.Currency, s.Metadata = "eur", map[string]string{"credits": "3"} }), 3, true},
		"another currency":                 {session(func(s *stripe.CheckoutSession) { s.Currency = "eur" }), 0, false},
		"the currency in upper case":       {session(func(s *stripe.CheckoutSession) { s.Currency = "USD" }), 10, true},
		"adaptive pricing: source amounts": {session(adaptive("usd", 2500)), 20, true},
		"adaptive pricing from euros":      {session(adaptive("eur", 2500)), 0, false},
		"not a whole credit":               {session(func(s *stripe.CheckoutSession) { s.AmountSubtotal = 1251 }), 0, false},
		"no amount":                        {session(func(s *stripe.CheckoutSession) { s.AmountSubtotal = 0 }), 0, false},
		"no user":                          {session(func(s *stripe.CheckoutSession) { s.ClientReferenceID = "" }), 0, false},
		"invalid user":                     {session(func(s *stripe.CheckoutSession) { s.ClientReferenceID = "user A" }), 0, false},
		"payment_intent not an ID":         {session(func(s *stripe.CheckoutSession) { s.PaymentIntent = &stripe.PaymentIntent{ID: "pi 1"} }), 0, false},
		"metadata not a number":            {session(func(s *stripe.CheckoutSession) { s.Metadata = map[string]string{"credits": "1.5"} }), 0, false},
		"metadata zero":                    {session(func(s *stripe.CheckoutSession) { s.Metadata = map[string]string{"credits": "0"} }), 0, false},
		"metadata above 2^53 - 1":          {session(func(s *stripe.CheckoutSession) { s.Metadata = map[string]string{"credits": "9007199254740992"} }), 0, false},
	} {
		n, reason := wh.credits(c.s)
		if n != c.credits || (reason == "") != c.ok {
			t.Errorf("%s: %d %q, want %d ok=%v", name, n, reason, c.credits, c.ok)
		}
	}
}

// adaptive is a session localized by Adaptive Pricing into GBP from source currency.
func adaptive(source stripe.Currency, subtotal int64) func(*stripe.CheckoutSession) {
	return func(s *stripe.CheckoutSession) {
		s.Currency, s.AmountSubtotal = "gbp", 2111
		s.CurrencyConversion = &stripe.CheckoutSessionCurrencyConversion{SourceCurrency: source, AmountSubtotal: subtotal, AmountTotal: subtotal}
	}
}

// send delivers an event of type kind with object to wh, signed, and returns the status.
func send(t *testing.T, wh *Webhook, id, kind string, object map[string]any) int {
	t.Helper()
	payload, _ := json.Marshal(map[string]any{"id": id, "object": "event", "type": kind, "data": map[string]any{"object": object}})
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: wh.WebhookSecret, Timestamp: time.Now()})
	req := httptest.NewRequest("POST", "/api/webhooks/stripe", strings.NewReader(string(payload)))
	req.Header.Set("Stripe-Signature", signed.Header)
	rec := httptest.NewRecorder()
	wh.ServeHTTP(rec, req)
	return rec.Code
}

func newWebhook(store *recordingStore, log *strings.Builder) *Webhook {
	return &Webhook{Settings: Settings{WebhookSecret: "whsec_x", PricePerCreditCents: 125, CheckoutCurrency: "usd"}, Store: store,
		Log: funcr.New(func(_, args string) {
			if log != nil {
				log.WriteString(args + "\n")
			}
		}, funcr.Options{})}
}

func TestUnassignableSessionIsLoggedWithItsID(t *testing.T) {
	var logged strings.Builder
	store := &recordingStore{}
	wh := newWebhook(store, &logged)
	before := testutil.ToFloat64(metrics.StripeEvents.WithLabelValues(evCompleted, resultUnassignable))
	code := send(t, wh, "evt_9", evCompleted, map[string]any{"id": "cs_live_lost", "payment_status": "paid", "currency": "usd", "amount_subtotal": 1250})
	if code != 200 || len(store.ops) != 0 {
		t.Fatalf("unassignable session: %d, %d grants", code, len(store.ops))
	}
	if !strings.Contains(logged.String(), `"session"="cs_live_lost"`) || !strings.Contains(logged.String(), "client_reference_id") {
		t.Fatalf("the Error log does not name the session and the reason:\n%s", logged.String())
	}
	if d := testutil.ToFloat64(metrics.StripeEvents.WithLabelValues(evCompleted, resultUnassignable)) - before; d != 1 {
		t.Fatalf("unassignable counted %v times", d)
	}
}

// TestPaidSessionIsAGrantRecordedAsItsPurchase: the webhook's operation is a grant keyed by
// the session (exactly once, the grant ledger) that names the session as its purchase and
// its PaymentIntent; free sessions grant too, unpaid and failed ones do not.
func TestPaidSessionIsAGrantRecordedAsItsPurchase(t *testing.T) {
	store := &recordingStore{}
	wh := newWebhook(store, nil)
	sessionOf := func(id, status string) map[string]any {
		return map[string]any{"id": id, "client_reference_id": "user_A", "payment_status": status, "currency": "usd", "amount_subtotal": 1250,
			"amount_total": 1400, "payment_intent": "pi_" + id}
	}
	for _, e := range []struct{ kind, id, status string }{
		{evCompleted, "cs_test_a1B2", "paid"},
		{evCompleted, "cs_test_1;g,5,5,1", "paid"}, // no Stripe ID: unassignable
		{evCompleted, "cs_free", "no_payment_required"},
		{evCompleted, "cs_async", "unpaid"},
		{evAsyncFailed, "cs_failed", "unpaid"},
		{evExpired, "cs_expired", "unpaid"},
		{evAsyncSucceeded, "cs_async", "paid"},
	} {
		if code := send(t, wh, "evt_1", e.kind, sessionOf(e.id, e.status)); code != 200 {
			t.Fatalf("%s %s: %d", e.kind, e.id, code)
		}
	}
	grant := func(id string) account.Operation {
		return account.Operation{Kind: account.OpGrant, Amount: 10, IdempotencyKey: "stripe-checkout:" + id, Purchase: id, Payment: "pi_" + id}
	}
	want := []account.Operation{grant("cs_test_a1B2"), grant("cs_free"), grant("cs_async")}
	if len(store.ops) != len(want) {
		t.Fatalf("operations %+v, want %+v", store.ops, want)
	}
	for i := range want {
		if store.ops[i] != want[i] {
			t.Fatalf("operation %d: %+v, want %+v", i, store.ops[i], want[i])
		}
	}
}

// TestRefundsAndDisputesFollowThePayment: each event becomes the operation on the payment
// it names, with what the event says of the charge; the result is counted by type.
func TestRefundsAndDisputesFollowThePayment(t *testing.T) {
	store := &recordingStore{follow: func(account.Operation) (account.Result, error) { return account.Result{}, nil }}
	wh := newWebhook(store, nil)
	dispute := func(status string) map[string]any {
		return map[string]any{"id": "du_1", "object": "dispute", "status": status, "charge": "ch_1", "payment_intent": "pi_1", "amount": 1250, "created": 1700000000}
	}
	steps := []struct {
		kind   string
		object map[string]any
		want   *account.Operation
		result string
	}{
		{evChargeRefunded, map[string]any{"id": "ch_1", "object": "charge", "amount": 1250, "amount_refunded": 300, "payment_intent": "pi_1"},
			&account.Operation{Kind: account.OpRefund, Payment: "pi_1", Charge: account.ChargeState{Amount: 1250, Refunded: 300}}, resultRefunded},
		{evDisputeCreated, dispute("needs_response"), &account.Operation{Kind: account.OpDispute, Payment: "pi_1", Charge: account.ChargeState{Dispute: "du_1", DisputeStatus: account.DisputeOpen, DisputeCreated: 1700000000}}, resultDisputed},
		{evDisputeClosed, dispute("won"), &account.Operation{Kind: account.OpDispute, Payment: "pi_1", Charge: account.ChargeState{Dispute: "du_1", DisputeStatus: account.DisputeWon, DisputeCreated: 1700000000}}, resultReinstated},
		{evDisputeClosed, dispute("warning_closed"), &account.Operation{Kind: account.OpDispute, Payment: "pi_1", Charge: account.ChargeState{Dispute: "du_1", DisputeStatus: account.DisputeWon, DisputeCreated: 1700000000}}, resultReinstated},
		{evDisputeClosed, dispute("prevented"), &account.Operation{Kind: account.OpDispute, Payment: "pi_1", Charge: account.ChargeState{Dispute: "du_1", DisputeStatus: account.DisputeWon, DisputeCreated: 1700000000}}, resultReinstated},
		{evDisputeReinstated, dispute("won"), &account.Operation{Kind: account.OpDispute, Payment: "pi_1", Charge: account.ChargeState{Dispute: "du_1", DisputeStatus: account.DisputeWon, DisputeCreated: 1700000000}}, resultReinstated},
		{evDisputeClosed, dispute("lost"), &account.Operation{Kind: account.OpDispute, Payment: "pi_1", Charge: account.ChargeState{Dispute: "du_1", DisputeStatus: account.DisputeLost, DisputeCreated: 1700000000}}, resultDisputeLost},
		{evDisputeUpdated, dispute("under_review"), nil, resultIgnored},
		{evRefundCreated, map[string]any{"id": "re_1", "object": "refund", "amount": 300, "payment_intent": "pi_1"}, nil, resultIgnored},
		{evChargeRefunded, map[string]any{"id": "ch_2", "object": "charge", "amount": 1250, "amount_refunded": 300}, nil, resultUnmatched}, // no PaymentIntent
	}
	for _, s := range steps {
		before := testutil.ToFloat64(metrics.StripeEvents.WithLabelValues(s.kind, s.result))
		store.ops = nil
		if code := send(t, wh, "evt_r", s.kind, s.object); code != 200 {
			t.Fatalf("%s: %d", s.kind, code)
		}
		if (s.want == nil) != (len(store.ops) == 0) || s.want != nil && store.ops[0] != *s.want {
			t.Fatalf("%s %v: operations %+v, want %+v", s.kind, s.object["status"], store.ops, s.want)
		}
		if d := testutil.ToFloat64(metrics.StripeEvents.WithLabelValues(s.kind, s.result)) - before; d != 1 {
			t.Fatalf("%s %v: {type=%s,result=%s} grew by %v", s.kind, s.object["status"], s.kind, s.result, d)
		}
	}

	// A payment no lot names: 200, counted unmatched, logged; a store that cannot write: 500.
	var logged strings.Builder
	wh = newWebhook(&recordingStore{}, &logged)
	refund := map[string]any{"id": "ch_9", "object": "charge", "amount": 1250, "amount_refunded": 1250, "payment_intent": "pi_9"}
	if code := send(t, wh, "evt_u", evChargeRefunded, refund); code != 200 || !strings.Contains(logged.String(), `"paymentIntent"="pi_9"`) {
		t.Fatalf("unmatched: %d\n%s", code, logged.String())
	}
	wh = newWebhook(&recordingStore{follow: func(account.Operation) (account.Result, error) { return account.Result{}, context.DeadlineExceeded }}, nil)
	if code := send(t, wh, "evt_e", evChargeRefunded, refund); code != 500 {
		t.Fatalf("a failed write: %d, want 500 (Stripe retries)", code)
	}
}
