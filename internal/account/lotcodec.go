package account

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// Lots to and from spec.lots, or nothing when the balance lot alone says it all (codec.go
// stores the rest of an account).

// storedLots is how the lots are stored: nil when the only one is a plain balance lot,
// which spec.credits alone says (so that a balance never granted in lots keeps the shape
// it always had, and an edit of spec.credits keeps working for it).
func (a *Account) storedLots() []creditsv1alpha1.Lot {
	if len(a.Lots) == 0 || len(a.Lots) == 1 && a.Lots[0].plainBalance() {
		return nil
	}
	out := make([]creditsv1alpha1.Lot, len(a.Lots))
	for i, l := range a.Lots {
		credits := l.Credits
		if l.ID == BalanceLotID {
			credits = max(1, l.Remaining+a.held(l.ID)) // not a grant: what it holds
		}
		out[i] = creditsv1alpha1.Lot{ID: l.ID, Credits: credits, Remaining: l.Remaining, Priority: l.Priority, Source: l.Source,
			Reference: l.Reference, Reason: l.Reason, GrantedAt: metav1.NewTime(l.GrantedAt), Closed: l.Closed, Payment: l.Payment, Removed: l.Removed}
		if r := l.Refund; r != (Refund{}) {
			out[i].Refund = &creditsv1alpha1.LotRefund{AmountRefunded: r.Amount, Credits: r.Credits, Taken: r.Taken, Removed: r.Removed,
				Unrecoverable: r.Unrecoverable}
		}
		if d := l.Dispute; d != (Dispute{}) {
			out[i].Dispute = &creditsv1alpha1.LotDispute{ID: d.ID, Status: d.Status, Credits: d.Credits, Created: d.Created}
		}
		if !l.ExpiresAt.IsZero() {
			out[i].ExpiresAt = &metav1.Time{Time: l.ExpiresAt}
		}
		if !l.ClosedAt.IsZero() {
			out[i].ClosedAt = &metav1.Time{Time: l.ClosedAt}
		}
	}
	return out
}

// lotsOf reads obj's lots; without any, the whole balance is the balance lot, which is
// there too when it has nothing left but credits held (a hold without lots took them from
// it: GET /api/credits/grants lists it while they are held).
func lotsOf(obj *creditsv1alpha1.UserCredits) []Lot {
	if len(obj.Spec.Lots) == 0 {
		heldBalance := slices.ContainsFunc(obj.Spec.Reservations, func(r creditsv1alpha1.Reservation) bool {
			return len(r.From) == 0 || slices.ContainsFunc(r.From, func(p creditsv1alpha1.LotCredits) bool { return p.Lot == BalanceLotID })
		})
		if obj.Spec.Credits == 0 && !heldBalance {
			return nil
		}
		return []Lot{{ID: BalanceLotID, Credits: obj.Spec.Credits, Remaining: obj.Spec.Credits, Priority: DefaultPriority, Source: SourceSet,
			GrantedAt: obj.CreationTimestamp.Time}}
	}
	lots := make([]Lot, len(obj.Spec.Lots))
	for i, l := range obj.Spec.Lots {
		lots[i] = Lot{ID: l.ID, Credits: l.Credits, Remaining: l.Remaining, Priority: l.Priority, Source: l.Source, Reference: l.Reference,
			Reason: l.Reason, GrantedAt: l.GrantedAt.Time, Closed: l.Closed, Payment: l.Payment, Removed: l.Removed}
		if r := l.Refund; r != nil {
			lots[i].Refund = Refund{Amount: r.AmountRefunded, Credits: r.Credits, Taken: r.Taken, Removed: r.Removed, Unrecoverable: r.Unrecoverable}
		}
		if d := l.Dispute; d != nil {
			lots[i].Dispute = Dispute{ID: d.ID, Status: d.Status, Credits: d.Credits, Created: d.Created}
		}
		if l.ExpiresAt != nil {
			lots[i].ExpiresAt = l.ExpiresAt.Time
		}
		if l.ClosedAt != nil {
			lots[i].ClosedAt = l.ClosedAt.Time
		}
	}
	return lots
}
