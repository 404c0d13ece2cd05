package operator_test

// Attacks on issue 20's lot bound where money comes in: a Stripe purchase.

import (
	"fmt"
	"testing"
	"time"

	"github.com/gitread/usercredits-operator/internal/operator/options"
	"github.com/gitread/usercredits-operator/test/framework"
)

// TestAttack20PurchaseAtOneHundredLots: a customer with 100 lots with credits left (100
// unspent packs bought, or grants) pays for one more; a purchase never joins a lot
// (account.grant merges only lots that name nothing). The paid Checkout Session is refused ErrTooManyLots and the webhook answers Stripe
// 200 {"received":true} (unassignable): the customer paid, is not credited, and Stripe will
// not retry. docs/stripe.md's list of sessions that cannot be credited does not name this
// case; a CreditGrant in the same state waits (TooManyLots) and is applied later, a paid
// session must at least be retried (5xx) or credited.
func TestAttack20PurchaseAtOneHundredLots(t *testing.T) {
	base := extraReplica(t, func(o *options.Options) { o.Stripe.WebhookSecret = stripeSecret })
	user := "user_A20Buyer1"
	pay := func(i int) (int, string) {
		session := map[string]any{"id": fmt.Sprintf("cs_test_a20_%d", i), "client_reference_id": user, "payment_status": "paid",
			"amount_total": 125, "metadata": map[string]string{"credits": "1"}}
		return deliver(t, base, stripeEvent(fmt.Sprintf("evt_a20_%d", i), "checkout.session.completed", session), stripeSecret, time.Now())
	}
	a20HundredLots(t, user) // as 100 unspent packs leave it (stripe lots never merge either)
	status, body := pay(100)
	if status >= 500 {
		return // retried by Stripe
	}
	// Read on the first replica, which shows the webhook replica's write once its watch
	// delivers it (docs/guarantees.md: milliseconds), not at once.
	framework.Eventually(t, 2*time.Second, func() error {
		if got := balanceOf(t, user); got != `{"credits":101}` {
			return fmt.Errorf("the 101st paid session: %d %s and the balance stays %s: paid, not credited, and Stripe is told not to retry", status, body, got)
		}
		return nil
	})
}
