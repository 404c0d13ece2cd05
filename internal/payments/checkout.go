package payments

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/stripe/stripe-go/v82"

	"github.com/gitread/usercredits-operator/internal/account"
)

// checkout grants a paid (or free: a 100 % coupon) session's credits, once per session, as
// a purchase naming it and its PaymentIntent; a completed session whose payment is still on
// its way (payment_status unpaid) waits for checkout.session.async_payment_succeeded.
func (wh *Webhook) checkout(ctx context.Context, event delivery, s *stripe.CheckoutSession) string {
	paid := s.PaymentStatus == stripe.CheckoutSessionPaymentStatusPaid || s.PaymentStatus == stripe.CheckoutSessionPaymentStatusNoPaymentRequired ||
		event.Type == evAsyncSucceeded // sent once the delayed payment is paid
	if !paid {
		wh.Log.V(1).Info("a Checkout Session completed unpaid: its credits wait for its payment", "event", event.ID, "session", s.ID)
		return resultPending
	}
	amount, reason := wh.credits(s)
	if reason != "" {
		wh.unassignable(event, s, reason)
		return resultUnassignable
	}
	// A grant, keyed by the session so that it applies once, recorded as the purchase of it.
	// It carries what refunds and disputes of its payment that came before it said, so that
	// its lot is granted and refunded or disputed in one write.
	op := account.Operation{Kind: account.OpGrant, Amount: amount, IdempotencyKey: GrantKey(s.ID), Purchase: s.ID, Payment: paymentOf(s.PaymentIntent)}
	var early account.ChargeState
	if op.Payment != "" {
		var err error
		if early, err = wh.Store.EarlyCharge(ctx, op.Payment); err != nil {
			wh.Log.Error(err, "reading the refunds and disputes that came before a purchase failed; Stripe will retry", "session", s.ID, "event", event.ID)
			return resultError
		}
		op.Charge = early
	}
	res, err := wh.Store.Apply(ctx, account.UserID(s.ClientReferenceID), op) // checked by credits()
	// A purchase is never refused for the lot bound (it joins the balance lot at it): were it
	// ever, it would be an error below, retried, not a session dropped.
	switch {
	case errors.Is(err, account.ErrInvalidUserID), errors.Is(err, account.ErrIdempotencyKeyReused), errors.Is(err, account.ErrBalanceOverflow),
		errors.Is(err, account.ErrInvalidOperation):
		wh.unassignable(event, s, err.Error())
		return resultUnassignable
	case err != nil:
		// Stripe retries a 5xx for three days; the grant key makes the retry apply once.
		wh.Log.Error(err, "granting a paid Checkout Session failed; Stripe will retry", "session", s.ID, "event", event.ID)
		return resultError
	}
	if result := wh.followEarly(ctx, event, op, early, res.Replayed); result != "" {
		return result
	}
	if res.Replayed {
		return resultReplayed
	}
	wh.Log.Info("granted a paid Checkout Session", "session", s.ID, "event", event.ID, "userID", s.ClientReferenceID, "credits", amount,
		"paymentIntent", op.Payment)
	return resultGranted
}

// GrantKey is the Idempotency-Key of a session's grant: both event types and every
// redelivery of one session grant once.
func GrantKey(sessionID string) string { return "stripe-checkout:" + sessionID }

// paymentOf is a PaymentIntent's ID; "" for none (a session that needed no payment).
func paymentOf(pi *stripe.PaymentIntent) string {
	if pi == nil {
		return ""
	}
	return pi.ID
}

// credits is what a paid session buys: metadata.credits when present, else the amount
// before tax and discounts (amount_subtotal; with Adaptive Pricing, the session's source
// amounts, in the currency the prices were made in) at the price per credit, in the
// checkout currency only; reason says why it cannot be credited.
func (wh *Webhook) credits(s *stripe.CheckoutSession) (int64, string) {
	switch {
	case s.ID == "":
		return 0, "the session has no id"
	case !account.ValidReference(s.ID):
		return 0, "the session id is not a Stripe ID (letters, digits, '_', '-')"
	case s.ClientReferenceID == "":
		return 0, "the session has no client_reference_id (the Clerk user ID)"
	case !account.ValidUserID(s.ClientReferenceID):
		return 0, "client_reference_id is not a valid user ID"
	case paymentOf(s.PaymentIntent) != "" && !account.ValidReference(paymentOf(s.PaymentIntent)):
		return 0, "the session's payment_intent is not a Stripe ID"
	}
	if text, ok := s.Metadata["credits"]; ok {
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil || n < 1 || n > account.MaxBalance {
			return 0, "metadata.credits is not a whole number of credits"
		}
		return n, ""
	}
	currency, subtotal := string(s.Currency), s.AmountSubtotal
	if cc := s.CurrencyConversion; cc != nil && cc.SourceCurrency != "" {
		currency, subtotal = string(cc.SourceCurrency), cc.AmountSubtotal
	}
	switch {
	case !strings.EqualFold(currency, wh.CheckoutCurrency):
		return 0, "the session is in " + strconv.Quote(currency) + ", not --checkout-currency " + strconv.Quote(wh.CheckoutCurrency) +
			": set metadata.credits on sessions in other currencies"
	case subtotal <= 0:
		return 0, "the session has no amount_subtotal"
	case subtotal%wh.PricePerCreditCents != 0:
		return 0, "amount_subtotal is not a whole number of credits at --price-per-credit-cents"
	}
	return subtotal / wh.PricePerCreditCents, ""
}

// unassignable reports a paid session that cannot be credited: it must not vanish.
func (wh *Webhook) unassignable(event delivery, s *stripe.CheckoutSession, reason string) {
	wh.Log.Error(nil, "a paid Stripe Checkout Session cannot be credited: fix it, then resend the event (stripe events resend)",
		"session", s.ID, "event", event.ID, "reason", reason, "clientReferenceID", s.ClientReferenceID)
}

// followEarly applies to a purchase just granted the refunds and disputes of its payment
// that were remembered after the purchase read them: each of the two writes reads after the
// other's, so one of them sees the other. A replayed purchase carried nothing into a write
// (its first delivery, or a grant of its session through the API, made the lot), so it
// follows all that is remembered; a refund or dispute the lot has followed already is a
// replay. It answers "" when all is applied, resultError else (Stripe retries the
// purchase, a replay that follows again).
func (wh *Webhook) followEarly(ctx context.Context, event delivery, op account.Operation, carried account.ChargeState, replayed bool) string {
	if op.Payment == "" {
		return ""
	}
	later, err := wh.Store.EarlyCharge(ctx, op.Payment)
	if err == nil && (later != carried || replayed) {
		var follow []account.Operation
		if later.Refunded > 0 {
			follow = append(follow, account.Operation{Kind: account.OpRefund, Payment: op.Payment, Charge: account.ChargeState{Amount: later.Amount, Refunded: later.Refunded}})
		}
		if later.Dispute != "" {
			follow = append(follow, account.Operation{Kind: account.OpDispute, Payment: op.Payment, Charge: account.ChargeState{Dispute: later.Dispute, DisputeStatus: later.DisputeStatus,
				DisputeCreated: later.DisputeCreated}})
		}
		for _, f := range follow {
			if _, _, err = wh.Store.FollowPayment(ctx, f); errors.Is(err, account.ErrPaymentNotFound) {
				err = nil // joined the balance lot at the lot bound: unmatched (docs/stripe.md)
			}
			if err != nil {
				break
			}
		}
	}
	if err != nil {
		wh.Log.Error(err, "applying the refunds and disputes that came before a purchase failed; Stripe will retry", "event", event.ID, "paymentIntent", op.Payment)
		return resultError
	}
	return ""
}
