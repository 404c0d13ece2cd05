package payments

import (
	"context"
	"errors"

	"github.com/stripe/stripe-go/v82"

	"github.com/gitread/usercredits-operator/internal/account"
)

// The purchase a refund or dispute concerns is found by its PaymentIntent, which the
// purchase's lot records, in the store's index of them: no call to Stripe, no LIST, one
// write per event. Both are decided on what the event says of the charge now (the
// cumulative amount refunded, the dispute's status), so redeliveries and late deliveries
// apply nothing twice (account/payments.go).

// refund makes the purchase's lot follow charge.refunded: it takes back the refunded share
// of the credits the purchase granted (rounded up), from what is left of them first.
func (wh *Webhook) refund(ctx context.Context, event delivery, c *stripe.Charge) string {
	op := account.Operation{Kind: account.OpRefund, Payment: paymentOf(c.PaymentIntent),
		Charge: account.ChargeState{Amount: c.Amount, Refunded: c.AmountRefunded}}
	if c.AmountRefunded == 0 {
		return resultIgnored // nothing refunded yet (a refund that failed, reversed)
	}
	return wh.follow(ctx, event, c.ID, op, resultRefunded)
}

// dispute makes the purchase's lot follow a dispute: created takes what is left of the
// purchase's credits; closed as won (or an inquiry closed, warning_closed, or prevented:
// the issuer's dispute was stopped before it became a chargeback, the money stays) and
// funds_reinstated return them, once; closed as lost keeps them taken.
func (wh *Webhook) dispute(ctx context.Context, event delivery, d *stripe.Dispute) string {
	status, result := account.DisputeOpen, resultDisputed
	switch {
	case event.Type == evDisputeReinstated:
		status, result = account.DisputeWon, resultReinstated
	case event.Type == evDisputeCreated:
	case d.Status == stripe.DisputeStatusWon || d.Status == stripe.DisputeStatusWarningClosed || d.Status == stripe.DisputeStatusPrevented:
		status, result = account.DisputeWon, resultReinstated
	case d.Status == stripe.DisputeStatusLost:
		status, result = account.DisputeLost, resultDisputeLost
	default:
		return resultIgnored // closed with a status Stripe does not close with
	}
	charge := ""
	if d.Charge != nil {
		charge = d.Charge.ID
	}
	op := account.Operation{Kind: account.OpDispute, Payment: paymentOf(d.PaymentIntent),
		Charge: account.ChargeState{Dispute: d.ID, DisputeStatus: status, DisputeCreated: max(0, d.Created)}}
	return wh.follow(ctx, event, charge, op, result)
}

// follow applies op to the purchase it names; result is what an application is counted as.
func (wh *Webhook) follow(ctx context.Context, event delivery, charge string, op account.Operation, result string) string {
	log := wh.Log.WithValues("event", event.ID, "type", event.Type, "paymentIntent", op.Payment, "charge", charge)
	if op.Payment == "" || !account.ValidReference(op.Payment) {
		log.Info("a Stripe refund or dispute names no PaymentIntent: no purchase of this operator's")
		return resultUnmatched
	}
	user, res, err := wh.Store.FollowPayment(ctx, op)
	switch {
	case errors.Is(err, account.ErrPaymentNotFound):
		log.Info("a Stripe refund or dispute matches no purchase: nothing done (a payment this operator did not grant, or a purchase spent longer ago than the refund window)")
		return resultUnmatched
	case errors.Is(err, account.ErrInvalidOperation):
		log.Error(nil, "a Stripe refund or dispute cannot be read: nothing done", "amount", op.Charge.Amount, "refunded", op.Charge.Refunded, "dispute", op.Charge.Dispute)
		return resultInvalid
	case err != nil:
		// Stripe retries a 5xx for three days: the record is fixed (or the replica ready)
		// by then, and the retry converges like any redelivery.
		log.Error(err, "following a Stripe refund or dispute failed; Stripe will retry", "userID", user)
		return resultError
	case res.Replayed:
		return resultReplayed
	}
	log.Info("followed a Stripe refund or dispute", "userID", user, "result", result, "credits", res.Credits)
	return result
}
