package e2e

// Purchases after the payment, through the built binary with the shipped RBAC: refunds and
// disputes signed as Stripe signs them take credits back (or return them), converge
// whatever the order and number of deliveries, and record what could not be taken back;
// events that match no purchase, sessions in other currencies and --checkout-currency.

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gitread/usercredits-operator/test/framework"
)

// stripeEvent is an event of type kind about object, as Stripe sends it.
func stripeEvent(id, kind string, object map[string]any) []byte {
	data, _ := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": "2025-03-31.basil", "created": time.Now().Unix(), "livemode": false,
		"type": kind, "data": map[string]any{"object": object},
	})
	return data
}

// session is a completed Checkout Session of user: subtotal before tax and discounts,
// total charged, paid by PaymentIntent pi ("" for none), in currency.
func session(id, user, status, currency string, subtotal, total int64, pi string) map[string]any {
	s := map[string]any{"id": id, "object": "checkout.session", "client_reference_id": user, "payment_status": status, "mode": "payment",
		"currency": currency, "amount_subtotal": subtotal, "amount_total": total, "metadata": map[string]string{}}
	if pi != "" {
		s["payment_intent"] = pi
	}
	return s
}

// refundedCharge is charge.refunded: the charge of pi for amount, amountRefunded refunded
// so far (Stripe's cumulative figure).
func refundedCharge(id, pi string, amount, amountRefunded int64) []byte {
	return stripeEvent(id, "charge.refunded", map[string]any{"id": "ch_" + pi, "object": "charge", "amount": amount,
		"amount_refunded": amountRefunded, "refunded": amountRefunded == amount, "currency": "usd", "payment_intent": pi})
}

// disputeEvent is a charge.dispute.* event of the dispute du of pi's charge.
func disputeEvent(id, kind, du, pi, status string) []byte {
	return stripeEvent(id, kind, map[string]any{"id": du, "object": "dispute", "amount": 1250, "currency": "usd",
		"charge": "ch_" + pi, "payment_intent": pi, "status": status, "reason": "fraudulent"})
}

// stripeCounter reads usercredits_stripe_events_total{type,result} from m's metrics.
func stripeCounter(t *testing.T, m *manager, token, eventType, result string) float64 {
	t.Helper()
	status, body := scrape(m.metricsAddr, token)
	if status != 200 {
		t.Fatalf("scrape: %d %.200s", status, body)
	}
	return labeledValue(body, "usercredits_stripe_events_total", `type="`+eventType+`"`, `result="`+result+`"`)
}

// labeledValue is the value of the sample name with all of labels in an exposition; 0
// when there is none (a counter not incremented yet).
func labeledValue(exposition, name string, labels ...string) float64 {
	for _, line := range strings.Split(exposition, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		set, value, _ := strings.Cut(rest, "} ")
		matched := true
		for _, l := range labels {
			matched = matched && strings.Contains(","+set+",", ","+l+",")
		}
		if matched {
			v, _ := strconv.ParseFloat(strings.TrimSpace(value), 64)
			return v
		}
	}
	return 0
}

// deliverTwice delivers payload twice, as Stripe may, and expects 200 both times.
func deliverTwice(t *testing.T, m *manager, what string, payload []byte) {
	t.Helper()
	for i := 0; i < 2; i++ {
		expectHTTP(t, what, 200, `{"received":true}`)(deliver(t, m, payload, e2eStripeSecret))
	}
}

// expectBalance checks user's balance as the user reads it.
func expectBalance(t *testing.T, m *manager, user, what string, want int) {
	t.Helper()
	if got := balance(t, m, user); got != fmt.Sprintf(`{"credits":%d}`, want) {
		t.Fatalf("%s: %s's balance %s, want %d", what, user, got, want)
	}
}

// buy completes a paid session of 1250 cents (10 credits) for user, paid by pi.
func buy(t *testing.T, m *manager, user, cs, pi string) {
	t.Helper()
	deliverTwice(t, m, "purchase "+cs, stripeEvent("evt_"+cs, "checkout.session.completed", session(cs, user, "paid", "usd", 1250, 1250, pi)))
	expectBalance(t, m, user, "after the purchase", 10)
}

func TestStripeRefundsAndDisputes(t *testing.T) {
	m := launch(t, nil, "STRIPE_WEBHOOK_SECRET="+e2eStripeSecret)
	metricsToken := suite.c.metricsReaderToken(t)

	t.Run("partial refunds add up, in order and out of order, each delivered twice", func(t *testing.T) {
		for user, c := range map[string]struct {
			order []int64 // cumulative amounts refunded, as delivered
			taken []int64 // the refunds' entries in the history, newest first
		}{
			"user_E2ERefundInOrder":  {[]int64{300, 700, 1250}, []int64{4, 3, 3}},
			"user_E2ERefundShuffled": {[]int64{700, 300, 1250, 700}, []int64{4, 6}},
		} {
			pi := "pi_" + strings.TrimPrefix(user, "user_")
			buy(t, m, user, "cs_"+pi[3:], pi)
			highest := int64(0)
			for i, refunded := range c.order {
				deliverTwice(t, m, fmt.Sprintf("refund of %d", refunded), refundedCharge(fmt.Sprintf("evt_r%d_%s", i, pi), pi, 1250, refunded))
				highest = max(highest, refunded)
				want := 10 - (10*highest+1249)/1250 // ceil: rounded in the seller's favour
				expectBalance(t, m, user, fmt.Sprintf("after refunds up to %d of 1250 cents", highest), int(want))
			}
			var history struct {
				Transactions []struct {
					Type, Reference string
					Credits         int64
				}
			}
			_, body := httpDo(t, "GET", m.url("/api/credits/transactions"), userToken(t, user), "")
			if err := json.Unmarshal([]byte(body), &history); err != nil || len(history.Transactions) != len(c.taken)+1 {
				t.Fatalf("%s's history: %s, want %d refunds and the purchase", user, body, len(c.taken))
			}
			for i, want := range c.taken {
				if e := history.Transactions[i]; e.Type != "refund" || e.Credits != want || e.Reference != "cs_"+pi[3:] {
					t.Fatalf("%s's history entry %d: %+v, want a refund of %d naming the session", user, i, e, want)
				}
			}
		}
	})

	t.Run("a refund after spending records what it could not take back", func(t *testing.T) {
		user, pi := "user_E2ERefundSpent", "pi_E2ERefundSpent"
		buy(t, m, user, "cs_E2ERefundSpent", pi)
		consumer := suite.c.caller(t, e2eNamespace, "refund-spender", "credits-consumer")
		expectHTTP(t, "consume 7", 200, `{"success":true,"credits":3}`)(httpDo(t, "POST", m.url("/api/credits/consume?userId="+user), consumer, `{"credits":7}`))
		deliverTwice(t, m, "full refund", refundedCharge("evt_spent_full", pi, 1250, 1250))
		expectBalance(t, m, user, "after a full refund of a purchase 7 of whose 10 credits were spent", 0)
		_, body := httpDo(t, "GET", m.url("/api/credits/transactions"), userToken(t, user), "")
		if !strings.HasPrefix(body, `{"transactions":[{"type":"refund","credits":3,"balance":0,"at":`) || !strings.Contains(body, `"reference":"cs_E2ERefundSpent","unrecoverable":7}`) {
			t.Fatalf("history: %s", body)
		}
		lot := suite.c.kubectl(t, nil, "get", "uc", "-n", e2eNamespace, "-o", `jsonpath={.items[?(@.spec.userID=="`+user+`")].spec.lots[0].refund}`)
		if !strings.Contains(lot, `"taken":3`) || !strings.Contains(lot, `"unrecoverable":7`) {
			t.Fatalf("kubectl shows the lot's refund as %s", lot)
		}
		framework.Eventually(t, 10*time.Second, func() error {
			if evs := eventsAbout(t, e2eNamespace, objectName(t, e2eNamespace, user)); !hasEvent(evs, "Warning", "RefundUnrecovered") {
				return fmt.Errorf("no Warning RefundUnrecovered Event about %s", user)
			}
			return nil
		})
		_, metrics := scrape(m.metricsAddr, metricsToken)
		if v, err := metricValue(metrics, "usercredits_refund_unrecovered_credits_total"); err != nil || v != 7 {
			t.Fatalf("usercredits_refund_unrecovered_credits_total %v (%v), want 7", v, err)
		}
	})

	t.Run("a dispute takes what is left; won, it returns it once", func(t *testing.T) {
		user, pi := "user_E2EDispute", "pi_E2EDispute"
		buy(t, m, user, "cs_E2EDispute", pi)
		deliverTwice(t, m, "dispute created", disputeEvent("evt_du_1", "charge.dispute.created", "du_E2E1", pi, "needs_response"))
		expectBalance(t, m, user, "under dispute", 0)
		deliverTwice(t, m, "dispute won", disputeEvent("evt_du_2", "charge.dispute.closed", "du_E2E1", pi, "won"))
		deliverTwice(t, m, "funds reinstated", disputeEvent("evt_du_3", "charge.dispute.funds_reinstated", "du_E2E1", pi, "won"))
		deliverTwice(t, m, "a late created", disputeEvent("evt_du_1", "charge.dispute.created", "du_E2E1", pi, "needs_response"))
		expectBalance(t, m, user, "after the dispute was won", 10)
		if got := stripeCounter(t, m, metricsToken, "charge.dispute.closed", "reinstated"); got != 1 {
			t.Fatalf("{type=charge.dispute.closed,result=reinstated} = %v, want 1 (the redelivery is replayed)", got)
		}
	})

	t.Run("an event that matches no purchase is answered 200 and counted", func(t *testing.T) {
		before := stripeCounter(t, m, metricsToken, "charge.refunded", "unmatched")
		expectHTTP(t, "refund of an unknown payment", 200, `{"received":true}`)(deliver(t, m, refundedCharge("evt_unknown", "pi_NeverSold", 1250, 1250), e2eStripeSecret))
		if got := stripeCounter(t, m, metricsToken, "charge.refunded", "unmatched") - before; got != 1 {
			t.Fatalf("{type=charge.refunded,result=unmatched} grew by %v, want 1", got)
		}
	})

	t.Run("the amount before tax and discounts; a 100 % coupon; another currency", func(t *testing.T) {
		user := "user_E2EAmounts"
		before := stripeCounter(t, m, metricsToken, "checkout.session.completed", "unassignable")
		steps := []struct {
			what    string
			session map[string]any
			balance int
		}{
			{"tax and a coupon: subtotal 1250, total 1133", session("cs_E2ETax", user, "paid", "usd", 1250, 1133, "pi_E2ETax"), 10},
			{"a 100 % coupon", session("cs_E2EFree", user, "no_payment_required", "usd", 2500, 0, ""), 30},
			{"a EUR session without metadata.credits", session("cs_E2EEur", user, "paid", "eur", 1250, 1250, "pi_E2EEur"), 30},
		}
		for _, s := range steps {
			expectHTTP(t, s.what, 200, `{"received":true}`)(deliver(t, m, stripeEvent("evt_"+s.session["id"].(string), "checkout.session.completed", s.session), e2eStripeSecret))
			expectBalance(t, m, user, s.what, s.balance)
		}
		if got := stripeCounter(t, m, metricsToken, "checkout.session.completed", "unassignable") - before; got != 1 {
			t.Fatalf("{type=checkout.session.completed,result=unassignable} grew by %v, want 1 (the EUR session)", got)
		}
	})
}

// TestStripeCheckoutCurrency: --checkout-currency=eur prices EUR sessions (and Adaptive
// Pricing's EUR source amounts) at --price-per-credit-cents; a USD session is unassignable.
func TestStripeCheckoutCurrency(t *testing.T) {
	user := "user_E2EStripeEur"
	m := launch(t, []string{"--checkout-currency=eur", "--price-per-credit-cents=100"}, "STRIPE_WEBHOOK_SECRET="+e2eStripeSecret)
	adaptive := session("cs_E2EEurAdaptive", user, "paid", "gbp", 870, 870, "pi_E2EEurAdaptive")
	adaptive["currency_conversion"] = map[string]any{"source_currency": "eur", "amount_subtotal": 1000, "amount_total": 1000, "fx_rate": "0.87"}
	for _, s := range []struct {
		what    string
		session map[string]any
		balance int
	}{
		{"a EUR session of 1000 cents", session("cs_E2EEur1", user, "paid", "eur", 1000, 1000, "pi_E2EEur1"), 10},
		{"a session localized to GBP from EUR prices", adaptive, 20},
		{"a USD session", session("cs_E2EUsd1", user, "paid", "usd", 1000, 1000, "pi_E2EUsd1"), 20},
	} {
		expectHTTP(t, s.what, 200, `{"received":true}`)(deliver(t, m, stripeEvent("evt_"+s.session["id"].(string), "checkout.session.completed", s.session), e2eStripeSecret))
		expectBalance(t, m, user, s.what, s.balance)
	}
}
