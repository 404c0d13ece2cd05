package credits

import (
	"context"
	"errors"
	"fmt"
	"slices"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// payers maps each Stripe PaymentIntent a purchase lot names to the objects (and their
// users) whose lots name it, so that a refund or dispute, which names the payment and not
// the user, finds its user without a LIST. Only objects with purchase lots take room. The
// Index keeps it under its lock.
type payers struct {
	// byPayment: PaymentIntent → the objects naming it (one, but for a hand edit).
	byPayment map[string][]payer
	// byObject: object name → the PaymentIntents it named when last seen, to undo.
	byObject map[string][]string
}

// payer is an object naming a payment, and its user.
type payer struct{ object, user string }

func newPayers() payers {
	return payers{byPayment: map[string][]payer{}, byObject: map[string][]string{}}
}

// put replaces what obj names with what its lots name now.
func (p *payers) put(obj *creditsv1alpha1.UserCredits) {
	var named []string
	for _, l := range obj.Spec.Lots {
		if l.Payment != "" && !slices.Contains(named, l.Payment) {
			named = append(named, l.Payment)
		}
	}
	if slices.Equal(named, p.byObject[obj.Name]) && (len(named) == 0 || p.names(named[0], obj.Name, obj.Spec.UserID)) {
		return // the same payments: most updates of a user who bought something
	}
	p.remove(obj.Name)
	if len(named) == 0 {
		return
	}
	p.byObject[obj.Name] = named
	for _, pi := range named {
		p.byPayment[pi] = append(p.byPayment[pi], payer{object: obj.Name, user: obj.Spec.UserID})
	}
}

// names reports whether payment pi is recorded as named by object for user.
func (p *payers) names(pi, object, user string) bool {
	return slices.Contains(p.byPayment[pi], payer{object: object, user: user})
}

// remove forgets what the object named.
func (p *payers) remove(object string) {
	for _, pi := range p.byObject[object] {
		list := slices.DeleteFunc(p.byPayment[pi], func(e payer) bool { return e.object == object })
		if len(list) == 0 {
			delete(p.byPayment, pi)
		} else {
			p.byPayment[pi] = list
		}
	}
	delete(p.byObject, object)
}

// users are the distinct users whose objects name pi.
func (p *payers) users(pi string) []string {
	var out []string
	for _, e := range p.byPayment[pi] {
		if !slices.Contains(out, e.user) {
			out = append(out, e.user)
		}
	}
	return out
}

// Payers returns the users whose lots name the Stripe PaymentIntent pi: none, one, or
// (a hand edit) several.
func (ix *Index) Payers(pi string) []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.payers.users(pi)
}

// payers are the users whose objects this replica wrote, and the cache does not show yet,
// name pi in their lots: a refund right after its purchase finds it.
func (o *overlay) payers(pi string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for user, obj := range o.users {
		if slices.ContainsFunc(obj.Spec.Lots, func(l creditsv1alpha1.Lot) bool { return l.Payment == pi }) {
			out = append(out, user)
		}
	}
	return out
}

// ErrPaymentsNotIndexed: the index does not hold every object yet (a replica starting), so
// a payment it does not show may still be some user's: answer so that the caller retries.
var ErrPaymentsNotIndexed = errors.New("the purchases are not all indexed yet")

// FollowPayment applies op, a refund or dispute of a Stripe payment (op.Payment), to the
// user whose purchase lot names the payment, found in the index (and this replica's own
// writes): one apiserver write, no LIST. It returns the user, or
// account.ErrPaymentNotFound when no lot names the payment, account.ErrPaymentAmbiguous
// when lots of several users do (a hand edit), ErrPaymentsNotIndexed before the index has
// synced.
func (s *Store) FollowPayment(ctx context.Context, op account.Operation) (account.UserID, account.Result, error) {
	users := s.opts.Objects.Payers(op.Payment)
	for _, u := range s.reads.written.payers(op.Payment) {
		if !slices.Contains(users, u) {
			users = append(users, u)
		}
	}
	switch {
	case len(users) > 1:
		slices.Sort(users)
		return "", account.Result{}, fmt.Errorf("%w: users %v", account.ErrPaymentAmbiguous, users)
	case len(users) == 0 && !s.opts.Synced():
		return "", account.Result{}, ErrPaymentsNotIndexed
	case len(users) == 0:
		return "", account.Result{}, account.ErrPaymentNotFound
	}
	user := account.UserID(users[0])
	res, err := s.Apply(ctx, user, op)
	return user, res, err
}
