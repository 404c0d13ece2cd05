package operator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stripe/stripe-go/v82/webhook"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/metrics"
	"github.com/gitread/usercredits-operator/internal/operator/options"
	"github.com/gitread/usercredits-operator/test/framework"
)

const stripeSecret = "whsec_test_3f9a1c"

// stripeEvent is a Checkout event as Stripe sends it (the fields the operator reads, and
// some it does not).
func stripeEvent(id, kind string, session map[string]any) []byte {
	session["object"] = "checkout.session"
	session["currency"] = "usd"
	data, _ := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": "2024-06-20", "created": time.Now().Unix(), "livemode": false,
		"type": kind, "data": map[string]any{"object": session},
	})
	return data
}

// deliver posts payload to the webhook at base signed as Stripe signs it (stripe-go's own
// helper), with secret, at time at.
func deliver(t *testing.T, base string, payload []byte, secret string, at time.Time) (int, string) {
	t.Helper()
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: at})
	return request(t, "POST", base+"/api/webhooks/stripe", "", string(payload), "Stripe-Signature", signed.Header)
}

func stripeCount(result string) float64 {
	return testutil.ToFloat64(metrics.StripeEvents.WithLabelValues("checkout.session.completed", result))
}

// TestStripeCheckoutGrantsOnce: paid sessions grant amount_subtotal/125 (or metadata.credits),
// once per session whatever Stripe redelivers, and nothing else changes anything.
func TestStripeCheckoutGrantsOnce(t *testing.T) {
	base := extraReplica(t, func(o *options.Options) { o.Stripe.WebhookSecret = stripeSecret })
	user, other := "user_Buyer1", "user_Buyer2"
	now := time.Now()
	paid := func(sessionID, userID string, amount int64, metadata map[string]string) map[string]any {
		return map[string]any{"id": sessionID, "client_reference_id": userID, "payment_status": "paid", "amount_subtotal": amount, "amount_total": amount, "metadata": metadata}
	}
	completed := stripeEvent("evt_1", "checkout.session.completed", paid("cs_test_a1", user, 1250, map[string]string{}))
	steps := []struct {
		name    string
		payload []byte
		secret  string
		at      time.Time
		status  int
		want    string
		balance int64 // user's, after
	}{
		{"paid: 1250 cents = 10 credits", completed, stripeSecret, now, 200, `{"received":true}`, 10},
		{"redelivered", completed, stripeSecret, now, 200, `{"received":true}`, 10},
		{"async_payment_succeeded of the same session", stripeEvent("evt_2", "checkout.session.async_payment_succeeded", paid("cs_test_a1", user, 1250, nil)), stripeSecret, now, 200, `{"received":true}`, 10},
		{"metadata.credits wins", stripeEvent("evt_3", "checkout.session.completed", paid("cs_test_a2", user, 1250, map[string]string{"credits": "12"})), stripeSecret, now, 200, `{"received":true}`, 22},
		{"wrong secret", stripeEvent("evt_4", "checkout.session.completed", paid("cs_test_a3", user, 1250, nil)), "whsec_wrong", now, 400, `{"error":"Invalid signature"}`, 22},
		{"an hour-old timestamp", stripeEvent("evt_5", "checkout.session.completed", paid("cs_test_a4", user, 1250, nil)), stripeSecret, now.Add(-time.Hour), 400, `{"error":"Invalid signature"}`, 22},
		{"another event type", stripeEvent("evt_6", "payment_intent.succeeded", paid("pi_1", user, 1250, nil)), stripeSecret, now, 200, `{"received":true}`, 22},
		{"an unpaid session", stripeEvent("evt_7", "checkout.session.completed", map[string]any{"id": "cs_test_a5", "client_reference_id": user, "payment_status": "unpaid", "amount_subtotal": 1250}), stripeSecret, now, 200, `{"received":true}`, 22},
	}
	for _, s := range steps {
		if status, body := deliver(t, base, s.payload, s.secret, s.at); status != s.status || body != s.want {
			t.Fatalf("%s: %d %s, want %d %s", s.name, status, body, s.status, s.want)
		}
		if got := storedBalanceOf(t, user); got != s.balance {
			t.Fatalf("%s: balance %d, want %d", s.name, got, s.balance)
		}
	}
	if status, body := request(t, "POST", base+"/api/webhooks/stripe", "", string(completed)); status != 400 || body != `{"error":"Invalid signature"}` {
		t.Fatalf("no Stripe-Signature header: %d %s", status, body)
	}
	expectPurchases(t, user, []purchase{{"cs_test_a2", 12, 22}, {"cs_test_a1", 10, 10}})

	// A paid session that cannot be credited does not vanish: it is counted and logged.
	before := stripeCount("unassignable")
	for name, session := range map[string]map[string]any{
		"no client_reference_id":   paid("cs_test_b1", "", 1250, nil),
		"not a whole credit":       paid("cs_test_b2", other, 1300, nil),
		"metadata.credits garbage": paid("cs_test_b3", other, 1250, map[string]string{"credits": "ten"}),
	} {
		if status, body := deliver(t, base, stripeEvent("evt_"+name, "checkout.session.completed", session), stripeSecret, now); status != 200 {
			t.Fatalf("%s: %d %s", name, status, body)
		}
	}
	if d := stripeCount("unassignable") - before; d != 3 {
		t.Fatalf("usercredits_stripe_events_total{result=unassignable} grew by %v, want 3", d)
	}
	if status, body := request(t, "GET", creditsURL(apiBase, "/api/credits", other), serviceAccountToken(t, "stripe-check", "credits-viewer"), ""); body != `{"credits":0}` {
		t.Fatalf("an unassignable session changed a balance: %d %s", status, body)
	}

	// Without STRIPE_WEBHOOK_SECRET the endpoint does not exist.
	if status, _ := deliver(t, apiBase, completed, stripeSecret, now); status != http.StatusNotFound {
		t.Fatalf("webhook without a secret configured: %d, want 404", status)
	}
}

// TestStripeRetryAfterAnOutageGrantsOnce: with the apiserver down the webhook answers 5xx,
// so Stripe retries; the retry after it is back grants exactly once.
func TestStripeRetryAfterAnOutageGrantsOnce(t *testing.T) {
	base := extraReplica(t, func(o *options.Options) { o.Stripe.WebhookSecret = stripeSecret })
	user := "user_BuyerOutage1"
	event := stripeEvent("evt_o1", "checkout.session.completed",
		map[string]any{"id": "cs_test_outage", "client_reference_id": user, "payment_status": "paid", "amount_subtotal": 2500})

	apiserver := env.ControlPlane.GetAPIServer()
	if err := apiserver.Stop(); err != nil {
		t.Logf("apiserver stop: %v (killed)", err)
	}
	status, body := deliver(t, base, event, stripeSecret, time.Now())
	if err := apiserver.Start(); err != nil {
		t.Fatalf("restarting the apiserver: %v", err)
	}
	if status < 500 || !strings.Contains(body, "error") {
		t.Fatalf("during the outage: %d %s, want a 5xx so that Stripe retries", status, body)
	}
	var retries int
	framework.Eventually(t, 30*time.Second, func() error {
		retries++
		if status, body := deliver(t, base, event, stripeSecret, time.Now()); status != 200 {
			return fmt.Errorf("retry: %d %s", status, body)
		}
		return nil
	})
	for range 2 { // and Stripe's later redeliveries
		deliver(t, base, event, stripeSecret, time.Now())
	}
	if got := storedBalanceOf(t, user); got != 20 {
		t.Fatalf("after %d retries the balance is %d, want 20 (granted once)", retries, got)
	}
}

// purchase is a paid session as the history should show it.
type purchase struct {
	session          string
	credits, balance int64
}

// expectPurchases checks that user's history holds exactly want (newest first), each a
// purchase naming its session, and that each left one Normal Event CreditsPurchased naming
// it, and no CreditsGranted: whatever Stripe redelivered.
func expectPurchases(t *testing.T, user string, want []purchase) {
	t.Helper()
	status, body := request(t, "GET", creditsURL(apiBase, "/api/credits/transactions", user), serviceAccountToken(t, "stripe-history", "credits-viewer"), "")
	var got struct {
		Transactions []struct {
			Type, Reference string
			Credits         int64
			Balance         int64
		}
	}
	if err := json.Unmarshal([]byte(body), &got); status != 200 || err != nil || len(got.Transactions) != len(want) {
		t.Fatalf("history of %s: %d %s, want %d purchases", user, status, body, len(want))
	}
	for i, w := range want {
		if g := got.Transactions[i]; g.Type != "purchase" || g.Reference != w.session || g.Credits != w.credits || g.Balance != w.balance {
			t.Errorf("history entry %d: %+v, want a purchase of %d naming %s, balance %d after", i, g, w.credits, w.session, w.balance)
		}
	}
	framework.Eventually(t, 10*time.Second, func() error {
		var list eventsv1.EventList
		if err := k8sClient.List(context.Background(), &list, client.InNamespace(testNamespace)); err != nil {
			return err
		}
		notes := map[string]int{}
		for _, e := range list.Items {
			if e.Regarding.Name == account.ObjectNameForUser(user) && (e.Reason == "CreditsPurchased" || e.Reason == "CreditsGranted") {
				notes[e.Type+" "+e.Reason+": "+e.Note]++
			}
		}
		for _, w := range want {
			note := fmt.Sprintf("Normal CreditsPurchased: %d credits purchased: Stripe Checkout Session %s", w.credits, w.session)
			if notes[note] != 1 {
				return fmt.Errorf("Events about %s: %v; want one %q", user, notes, note)
			}
		}
		if len(notes) != len(want) {
			return fmt.Errorf("Events about %s: %v; want only the %d purchases", user, notes, len(want))
		}
		return nil
	})
}
