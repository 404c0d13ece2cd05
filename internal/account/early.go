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
// after both, as Account.dispute decides: a loss is final; the close of the dispute
// followed closes it; of two disputes, the newer (Dispute.newer) is followed.
func MergeCharge(old, next ChargeState) ChargeState {
	out := old
	if next.Refunded > out.Refunded {
		out.Amount, out.Refunded = next.Amount, next.Refunded
	}
	followed := Dispute{ID: out.Dispute, Status: out.DisputeStatus, Created: out.DisputeCreated}
	switch {
	case next.Dispute == "" || out.DisputeStatus == DisputeLost:
	case out.Dispute == "", next.DisputeStatus == DisputeLost:
		out.Dispute, out.DisputeStatus, out.DisputeCreated = next.Dispute, next.DisputeStatus, next.DisputeCreated
	case next.Dispute == out.Dispute:
		if out.DisputeStatus == DisputeOpen {
			out.DisputeStatus = next.DisputeStatus // closed
		}
		out.DisputeCreated = max(out.DisputeCreated, next.DisputeCreated)
	case followed.newer(next.Dispute, next.DisputeCreated):
		out.Dispute, out.DisputeStatus, out.DisputeCreated = next.Dispute, next.DisputeStatus, next.DisputeCreated
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
	dispute := c.Dispute == "" && c.DisputeStatus == "" && c.DisputeCreated == 0 || ValidReference(c.Dispute) && c.DisputeCreated >= 0 &&
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
		_, err = a.dispute(Operation{Kind: OpDispute, Payment: op.Payment, Charge: ChargeState{Dispute: c.Dispute, DisputeStatus: c.DisputeStatus,
			DisputeCreated: c.DisputeCreated}})
	}
	if errors.Is(err, ErrPaymentNotFound) {
		return nil
	}
	return err
}
