package account

import "errors"

// A refund or dispute can reach the webhook before the purchase it is about: Stripe does
// not deliver events in order, and retries a checkout.session.completed answered 5xx for
// hours, during which the payment may be refunded or disputed. Answered 200 "unmatched",
// it is never delivered again; so the store remembers what such events said of the
// payment (PendingCharge, merged by MergeCharge), and the purchase, when it comes, carries
// it (Operation.Charge on the purchase's grant): the lot is granted and then refunded or
// disputed in the same decision, the history showing both.

// MergeCharge is what two events say of one payment together, whatever their order: the
// largest cumulative refund (with its charge amount), and the dispute the lot would follow
// after both (a loss is final; a close of the dispute opened replaces it; another
// dispute's opening replaces a closed one, and not an open one's close), as
// Account.dispute decides.
func MergeCharge(old, next ChargeState) ChargeState {
	out := old
	if next.Refunded > out.Refunded {
		out.Amount, out.Refunded = next.Amount, next.Refunded
	}
	switch {
	case next.Dispute == "" || out.DisputeStatus == DisputeLost:
	case out.Dispute == "", next.DisputeStatus == DisputeLost:
		out.Dispute, out.DisputeStatus = next.Dispute, next.DisputeStatus
	case next.Dispute == out.Dispute && out.DisputeStatus == DisputeOpen:
		out.DisputeStatus = next.DisputeStatus // closed
	case next.Dispute != out.Dispute && next.DisputeStatus == DisputeOpen && out.DisputeStatus != DisputeOpen:
		out.Dispute, out.DisputeStatus = next.Dispute, next.DisputeStatus // a new one after a close
	}
	return out
}

// validEarlyCharge checks what a purchase's grant carries of its payment's earlier refunds
// and disputes.
func (op Operation) validEarlyCharge() bool {
	return op.Kind == OpGrant && op.Purchase != "" && op.Payment != "" && ValidEarlyCharge(op.Charge)
}

// ValidEarlyCharge reports whether c can be carried by a purchase: a refund part, a
// dispute part, either absent.
func ValidEarlyCharge(c ChargeState) bool {
	refund := c.Amount == 0 && c.Refunded == 0 || c.Amount > 0 && c.Refunded > 0 && c.Refunded <= c.Amount
	dispute := c.Dispute == "" && c.DisputeStatus == "" || ValidReference(c.Dispute) &&
		(c.DisputeStatus == DisputeOpen || c.DisputeStatus == DisputeWon || c.DisputeStatus == DisputeLost)
	return refund && dispute
}

// followEarly applies to the lot a purchase just made what its grant carries of the
// payment's earlier refunds and disputes. A purchase that joined the balance lot at the lot
// bound has no lot of its own to follow them (docs/stripe.md): they stay unmatched.
func (a *Account) followEarly(op Operation) error {
	c := op.Charge
	var err error
	if c.Refunded > 0 {
		_, err = a.refund(Operation{Kind: OpRefund, Payment: op.Payment, Charge: ChargeState{Amount: c.Amount, Refunded: c.Refunded}})
	}
	if c.Dispute != "" && err == nil {
		_, err = a.dispute(Operation{Kind: OpDispute, Payment: op.Payment, Charge: ChargeState{Dispute: c.Dispute, DisputeStatus: c.DisputeStatus}})
	}
	if errors.Is(err, ErrPaymentNotFound) {
		return nil
	}
	return err
}
