package account

import "slices"

// adoptPurchase makes the lot a replayed grant made the purchase op records: a Checkout
// Session granted first through the API with the key stripe-checkout:<session> (a
// service's success page) and then delivered by the webhook is granted once, but its lot
// was made by the API's grant and names no PaymentIntent. Without it, a refund or dispute
// of the payment would find no lot (unmatched) and take nothing back. The lot is adopted
// when it is still the grant's own: it exists, names no payment and nothing else, and
// holds exactly what the purchase granted (a grant that joined another lot at the lot
// bound is not adopted: a refund of it would take a share of credits it did not grant).
// It reports whether a changed.
func (a *Account) adoptPurchase(op Operation, res Result) bool {
	if op.Kind != OpGrant || op.Purchase == "" || op.Payment == "" {
		return false
	}
	i := a.lot(res.LotID)
	if i < 0 {
		return false
	}
	l := a.Lots[i]
	if l.ID == BalanceLotID || l.Payment != "" || l.Reference != "" || l.Credits != op.Amount || l.Closed != "" ||
		(l.Source != SourceAPI && l.Source != "") {
		return false
	}
	a.Lots = slices.Clone(a.Lots)
	a.Lots[i].Source, a.Lots[i].Reference, a.Lots[i].Payment = SourceStripe, op.Purchase, op.Payment
	a.lotsChanged = true
	return true
}

// purchased is the index of the lot that recorded purchase op already (its Checkout
// Session and its PaymentIntent, which pays for that session alone), or -1. A lot is kept
// for the purchase's refund window and among the last closed ones after, longer than the
// grant key: a purchase delivered again after its key is forgotten is found by it.
func (a *Account) purchased(op Operation) int {
	if op.Purchase == "" || op.Payment == "" {
		return -1
	}
	return slices.IndexFunc(a.Lots, func(l Lot) bool { return l.Payment == op.Payment && l.Reference == op.Purchase })
}
