package operator_test

// Attacks on issue 21 (refunds and disputes): deliveries Stripe makes in an order the
// webhook does not expect, and replicas that have not seen a purchase yet. Stripe does not
// deliver events in the order they happened, and retries a checkout.session.completed that
// was answered 5xx for hours: a refund issued meanwhile arrives first. A refund answered
// 200 is never delivered again, so the test treats a non-200 first answer as "Stripe will
// retry" and retries it after the purchase: only a refund answered 200 and never applied
// loses money.

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gitread/usercredits-operator/internal/operator/options"
)

// a21Event is an event of type kind about object, as Stripe sends it.
func a21Event(id, kind string, object map[string]any) []byte {
	data, _ := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": "2025-03-31.basil", "created": time.Now().Unix(), "livemode": false,
		"type": kind, "data": map[string]any{"object": object},
	})
	return data
}

// a21Purchase is checkout.session.completed of a paid 1250-cent session (10 credits) of
// user, paid by pi.
func a21Purchase(cs, user, pi string) []byte {
	return a21Event("evt_"+cs, "checkout.session.completed", map[string]any{"id": cs, "object": "checkout.session",
		"client_reference_id": user, "payment_status": "paid", "mode": "payment", "currency": "usd", "amount_subtotal": 1250,
		"amount_total": 1250, "payment_intent": pi, "metadata": map[string]string{}})
}

// a21Refund is charge.refunded of pi's 1250-cent charge, refunded cumulatively.
func a21Refund(id, pi string, refunded int64) []byte {
	return a21Event(id, "charge.refunded", map[string]any{"id": "ch_" + pi, "object": "charge", "amount": 1250,
		"amount_refunded": refunded, "refunded": refunded == 1250, "currency": "usd", "payment_intent": pi})
}

// a21Dispute is a charge.dispute.* event of dispute du of pi's charge.
func a21Dispute(id, kind, du, pi, status string) []byte {
	return a21Event(id, kind, map[string]any{"id": du, "object": "dispute", "amount": 1250, "currency": "usd",
		"charge": "ch_" + pi, "payment_intent": pi, "status": status, "reason": "fraudulent"})
}

// a21Deliver delivers payload to base and fails on anything but 200 or a 5xx (a 4xx is
// neither applied nor retried in a way that helps).
func a21Deliver(t *testing.T, base, what string, payload []byte) int {
	t.Helper()
	status, body := deliver(t, base, payload, stripeSecret, time.Now())
	if status != 200 && status < 500 {
		t.Fatalf("%s: %d %s", what, status, body)
	}
	return status
}

// a21Retried delivers payload as Stripe would after a first answer of first: a 200 is
// final, so nothing is redelivered; a 5xx is retried (until 200, within a few tries).
func a21Retried(t *testing.T, base, what string, payload []byte, first int) {
	t.Helper()
	if first == 200 {
		return
	}
	for i := 0; i < 20; i++ {
		if a21Deliver(t, base, what+" (Stripe's retry)", payload) == 200 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: still not 200 after Stripe's retries, with the purchase granted", what)
}

// TestAttack21RefundDeliveredBeforeThePurchase: the purchase's checkout.session.completed
// is delivered after the full refund of its payment (a retry of a delivery that failed,
// or Stripe's unordered delivery). The refund must not be answered 200 and dropped: after
// both are delivered (and the refund retried if it was answered 5xx) the balance is 0.
// Today the refund is answered 200 "unmatched", and the purchase then grants 10 credits
// for a payment that was refunded in full.
func TestAttack21RefundDeliveredBeforeThePurchase(t *testing.T) {
	base := extraReplica(t, func(o *options.Options) { o.Stripe.WebhookSecret = stripeSecret })
	user, pi := "user_Attack21Early1", "pi_Attack21Early1"
	refund := a21Refund("evt_a21_early_refund", pi, 1250)
	first := a21Deliver(t, base, "the refund, first", refund)
	if a21Deliver(t, base, "the purchase, late", a21Purchase("cs_Attack21Early1", user, pi)) != 200 {
		t.Fatal("the purchase was not granted")
	}
	a21Retried(t, base, "the refund", refund, first)
	if got := storedBalanceOf(t, user); got != 0 {
		t.Fatalf("a purchase refunded in full before its completion was delivered left %d credits (the refund was answered %d and never applied), want 0", got, first)
	}
}

// TestAttack21DisputeDeliveredBeforeThePurchase: the same with a chargeback: the dispute
// is created (and lost) before the purchase's completion is delivered. The money is gone;
// the credits must be too.
func TestAttack21DisputeDeliveredBeforeThePurchase(t *testing.T) {
	base := extraReplica(t, func(o *options.Options) { o.Stripe.WebhookSecret = stripeSecret })
	user, pi := "user_Attack21Early2", "pi_Attack21Early2"
	created := a21Dispute("evt_a21_early_dc", "charge.dispute.created", "du_Attack21Early2", pi, "needs_response")
	lost := a21Dispute("evt_a21_early_dl", "charge.dispute.closed", "du_Attack21Early2", pi, "lost")
	firstCreated := a21Deliver(t, base, "dispute created, first", created)
	firstLost := a21Deliver(t, base, "dispute lost, first", lost)
	if a21Deliver(t, base, "the purchase, late", a21Purchase("cs_Attack21Early2", user, pi)) != 200 {
		t.Fatal("the purchase was not granted")
	}
	a21Retried(t, base, "dispute created", created, firstCreated)
	a21Retried(t, base, "dispute lost", lost, firstLost)
	if got := storedBalanceOf(t, user); got != 0 {
		t.Fatalf("a purchase charged back (dispute lost) before its completion was delivered left %d credits (answers %d, %d), want 0",
			got, firstCreated, firstLost)
	}
}

// TestAttack21RefundOnAReplicaThatHasNotSeenThePurchase: two replicas serve the webhook
// behind one Service; the second one's watch lags (a loaded apiserver or network). A
// refund of a purchase the first replica just granted reaches the second, whose index does
// not show the purchase yet. It must be retried (5xx) or applied, never answered 200 and
// dropped. Today it is answered 200 "unmatched" and the credits stay.
func TestAttack21RefundOnAReplicaThatHasNotSeenThePurchase(t *testing.T) {
	granting := extraReplica(t, func(o *options.Options) { o.Stripe.WebhookSecret = stripeSecret })
	proxy := newAPIServerProxy(t, false, 2*time.Second)
	lagging, synced := proxiedReplica(t, proxy, func(o *options.Options) { o.Stripe.WebhookSecret = stripeSecret })
	if !synced(30 * time.Second) {
		t.Fatal("the lagging replica never synced")
	}
	user, pi := "user_Attack21Lag1", "pi_Attack21Lag1"
	if a21Deliver(t, granting, "the purchase", a21Purchase("cs_Attack21Lag1", user, pi)) != 200 {
		t.Fatal("the purchase was not granted")
	}
	refund := a21Refund("evt_a21_lag_refund", pi, 1250)
	first := a21Deliver(t, lagging, "the refund, on the lagging replica", refund)
	time.Sleep(3 * time.Second) // Stripe's first retry is minutes later: the lag is over
	a21Retried(t, lagging, "the refund", refund, first)
	if got := storedBalanceOf(t, user); got != 0 {
		t.Fatalf("a refund delivered to a replica whose cache lags was answered %d and the refunded purchase kept %d credits, want 0", first, got)
	}
}

// TestAttack21SecondDisputeLostAfterAnInquiryClosed: an inquiry (du_1) is opened and
// closed without a chargeback (warning_closed), then the buyer files a chargeback (du_2),
// which is lost: the money is gone, so are the credits. Delivered as du_2 created, du_1
// created, du_2 lost, du_1 closed (du_1's deliveries retried late), the webhook treats
// du_2 as "replaced" by du_1, ignores du_2's loss, and du_1's close returns all 10 credits.
// Every other order of the same four deliveries ends at 0. Want 0: deliveries converge.
// Low realism (du_1's two deliveries must both reach the endpoint after du_2's), shown
// because docs/stripe.md promises that any order of deliveries ends in the same balance.
func TestAttack21SecondDisputeLostAfterAnInquiryClosed(t *testing.T) {
	base := extraReplica(t, func(o *options.Options) { o.Stripe.WebhookSecret = stripeSecret })
	user, pi := "user_Attack21TwoDisputes", "pi_Attack21TwoDisputes"
	if a21Deliver(t, base, "the purchase", a21Purchase("cs_Attack21TwoDisputes", user, pi)) != 200 {
		t.Fatal("the purchase was not granted")
	}
	for _, d := range []struct {
		what    string
		payload []byte
	}{
		{"chargeback du_2 created", a21Dispute("evt_a21_d2c", "charge.dispute.created", "du_Attack21Two2", pi, "needs_response")},
		{"inquiry du_1 created (late)", a21Dispute("evt_a21_d1c", "charge.dispute.created", "du_Attack21Two1", pi, "warning_needs_response")},
		{"chargeback du_2 lost", a21Dispute("evt_a21_d2l", "charge.dispute.closed", "du_Attack21Two2", pi, "lost")},
		{"inquiry du_1 closed (late)", a21Dispute("evt_a21_d1w", "charge.dispute.closed", "du_Attack21Two1", pi, "warning_closed")},
	} {
		if status := a21Deliver(t, base, d.what, d.payload); status != 200 {
			t.Fatalf("%s: %d", d.what, status)
		}
	}
	if got := storedBalanceOf(t, user); got != 0 {
		t.Fatalf("a lost chargeback after a closed inquiry, delivered out of order: balance %d, want 0", got)
	}
}
