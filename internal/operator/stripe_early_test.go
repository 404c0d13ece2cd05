package operator_test

import (
	"testing"

	"github.com/gitread/usercredits-operator/internal/operator/options"
)

// TestARefundBeforeAPurchaseGrantedThroughTheAPIFirst: a service grants the session through
// the API (key stripe-checkout:<session>), the payment is refunded before the webhook's
// purchase is delivered (the refund is unmatched then: no lot names the payment), and the
// purchase then replays the service's grant. The replay records the payment on the lot and
// follows the refund remembered for it: the credits are taken back, and a second delivery
// of the purchase changes nothing.
func TestARefundBeforeAPurchaseGrantedThroughTheAPIFirst(t *testing.T) {
	base := extraReplica(t, func(o *options.Options) { o.Stripe.WebhookSecret = stripeSecret })
	user, cs, pi := "user_EarlyApiFirst", "cs_EarlyApiFirst", "pi_EarlyApiFirst"
	admin := serviceAccountToken(t, "early-granter", "credits-admin")
	if status, body := request(t, "POST", creditsURL(base, "/api/credits/grant", user), admin, `{"credits":10}`,
		"Idempotency-Key", "stripe-checkout:"+cs); status != 200 {
		t.Fatalf("the service's grant of the session: %d %s", status, body)
	}
	if status := a21Deliver(t, base, "the refund, before the purchase", a21Refund("evt_early_apifirst_refund", pi, 1250)); status != 200 {
		t.Fatalf("the refund: %d", status)
	}
	for i := 0; i < 2; i++ {
		if a21Deliver(t, base, "the purchase", a21Purchase(cs, user, pi)) != 200 {
			t.Fatal("the purchase was not answered 200")
		}
		if got := storedBalanceOf(t, user); got != 0 {
			t.Fatalf("delivery %d of the purchase of a session granted through the API and refunded before: balance %d, want 0", i+1, got)
		}
	}
}
