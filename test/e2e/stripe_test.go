package e2e

// The Stripe webhook through the built binary: STRIPE_WEBHOOK_SECRET from the process's
// environment enables it (docs/stripe.md), and --price-per-credit-cents prices a session
// without metadata.credits.

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"
)

const e2eStripeSecret = "whsec_e2e_8d41b7"

// checkoutEvent is a Checkout Session event as Stripe sends it: the fields the operator
// reads, and some it does not.
func checkoutEvent(id, kind string, session map[string]any) []byte {
	session["object"] = "checkout.session"
	session["currency"] = "usd"
	data, _ := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": "2024-06-20", "created": time.Now().Unix(), "livemode": false,
		"type": kind, "data": map[string]any{"object": session},
	})
	return data
}

// paidSession is a paid Checkout Session of user for amount cents.
func paidSession(id, user string, amount int64, metadata map[string]string) map[string]any {
	return map[string]any{"id": id, "client_reference_id": user, "payment_status": "paid", "mode": "payment",
		"amount_subtotal": amount, "amount_total": amount, "metadata": metadata}
}

// deliver posts payload to m's webhook signed as Stripe signs it (stripe-go's own helper)
// with secret, now.
func deliver(t *testing.T, m *manager, payload []byte, secret string) (int, string) {
	t.Helper()
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: time.Now()})
	return httpDo(t, "POST", m.url("/api/webhooks/stripe"), "", string(payload), "Stripe-Signature", signed.Header, "Content-Type", "application/json")
}

// balance is user's available balance as user reads it through m.
func balance(t *testing.T, m *manager, user string) string {
	t.Helper()
	_, body := httpDo(t, "GET", m.url("/api/credits"), userToken(t, user), "")
	return body
}

// TestStripeWebhookSecret: with STRIPE_WEBHOOK_SECRET in the environment a paid session
// grants once, whatever Stripe redelivers, and a bad signature changes nothing; without
// it the endpoint does not exist.
func TestStripeWebhookSecret(t *testing.T) {
	user := "user_E2EStripe1"
	completed := checkoutEvent("evt_e2e_1", "checkout.session.completed", paidSession("cs_e2e_1", user, 875, map[string]string{"credits": "7"}))

	t.Run("unset", func(t *testing.T) {
		m := launch(t, nil)
		expectHTTP(t, "webhook without STRIPE_WEBHOOK_SECRET", 404, `{"error":"Not found"}`)(deliver(t, m, completed, e2eStripeSecret))
		expectHTTP(t, "balance", 200, `{"credits":0}`)(200, balance(t, m, user))
	})

	t.Run("set", func(t *testing.T) {
		m := launch(t, nil, "STRIPE_WEBHOOK_SECRET="+e2eStripeSecret)
		steps := []struct {
			name    string
			payload []byte
			secret  string
			status  int
			body    string
			balance string
		}{
			{"paid checkout.session.completed", completed, e2eStripeSecret, 200, `{"received":true}`, `{"credits":7}`},
			{"redelivered", completed, e2eStripeSecret, 200, `{"received":true}`, `{"credits":7}`},
			{"async_payment_succeeded of the same session",
				checkoutEvent("evt_e2e_2", "checkout.session.async_payment_succeeded", paidSession("cs_e2e_1", user, 875, map[string]string{"credits": "7"})),
				e2eStripeSecret, 200, `{"received":true}`, `{"credits":7}`},
			{"signed with another secret",
				checkoutEvent("evt_e2e_3", "checkout.session.completed", paidSession("cs_e2e_2", user, 875, map[string]string{"credits": "7"})),
				"whsec_not_the_endpoints", 400, `{"error":"Invalid signature"}`, `{"credits":7}`},
		}
		for _, s := range steps {
			status, body := deliver(t, m, s.payload, s.secret)
			if status != s.status || body != s.body {
				t.Fatalf("%s: %d %s, want %d %s", s.name, status, body, s.status, s.body)
			}
			if got := balance(t, m, user); got != s.balance {
				t.Fatalf("%s: balance %s, want %s", s.name, got, s.balance)
			}
		}
		// What the cluster holds, not only what the API answers.
		if got := readBalance(t, suite.c, user); got != 7 {
			t.Fatalf("kubectl shows %d credits, want 7", got)
		}
	})
}

// TestStripePricePerCredit: --price-per-credit-cents=100 prices a paid session without
// metadata.credits: 500 cents buy 5 credits (4 at the default 125).
func TestStripePricePerCredit(t *testing.T) {
	user := "user_E2EStripePrice1"
	m := launch(t, []string{"--price-per-credit-cents=100"}, "STRIPE_WEBHOOK_SECRET="+e2eStripeSecret)
	event := checkoutEvent("evt_e2e_price_1", "checkout.session.completed", paidSession("cs_e2e_price_1", user, 500, map[string]string{}))
	expectHTTP(t, "paid session of 500 cents", 200, `{"received":true}`)(deliver(t, m, event, e2eStripeSecret))
	if got := balance(t, m, user); got != `{"credits":5}` {
		t.Fatalf("after paying 500 cents at 100 per credit: %s, want {\"credits\":5}", got)
	}
}
