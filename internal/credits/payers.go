package credits

import (
	"context"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/client"

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

// FollowPayment applies op, a refund or dispute of a Stripe payment (op.Payment), to the
// user whose purchase lot names the payment, found in the index (and this replica's own
// writes): one apiserver write, no LIST. The index is this replica's cache, which may lag
// (starting, or behind another replica's write), and an "unmatched" answer is final for
// Stripe: a miss is confirmed by one LIST at the apiserver selecting the payment's label
// (account.PaymentLabel), which every record whose lots name the payment carries. It
// returns the user, or account.ErrPaymentNotFound when no lot names the payment (confirmed),
// account.ErrPaymentAmbiguous when lots of several users do (a hand edit), or the error of
// a LIST that failed (to be retried).
func (s *Store) FollowPayment(ctx context.Context, op account.Operation) (account.UserID, account.Result, error) {
	users := s.opts.Objects.Payers(op.Payment)
	for _, u := range s.reads.written.payers(op.Payment) {
		if !slices.Contains(users, u) {
			users = append(users, u)
		}
	}
	if len(users) == 0 {
		var err error
		if users, err = s.listPayers(ctx, op.Payment); err != nil {
			return "", account.Result{}, err
		}
	}
	if len(users) == 0 {
		// Unmatched, or early (credits/early.go): remembered for a purchase that comes later,
		// then listed again, as the purchase may have been written between the two (a
		// purchase reads the early events after its write too, so one of them sees the other).
		if err := s.rememberEarly(ctx, op); err != nil {
			return "", account.Result{}, err
		}
		var err error
		if users, err = s.listPayers(ctx, op.Payment); err != nil {
			return "", account.Result{}, err
		}
	}
	switch {
	case len(users) > 1:
		slices.Sort(users)
		return "", account.Result{}, fmt.Errorf("%w: users %v", account.ErrPaymentAmbiguous, users)
	case len(users) == 0:
		return "", account.Result{}, account.ErrPaymentNotFound
	}
	user := account.UserID(users[0])
	res, err := s.Apply(ctx, user, op) // a cache that does not show the lot yet is read past (writes.go, notInCache)
	return user, res, err
}

// maxPayers bounds what the confirming LIST returns: one record names a payment; more is a
// hand edit, which two show.
const maxPayers = 2

// listPayers are the users whose records' lots name payment pi, read from the apiserver:
// the records carrying its label, whose lots name it (a label alone, kept by a hand edit,
// is not a purchase).
func (s *Store) listPayers(ctx context.Context, pi string) ([]string, error) {
	req, err := labels.NewRequirement(account.PaymentLabel(pi), selection.Exists, nil)
	if err != nil {
		return nil, fmt.Errorf("the label of payment %q: %w", pi, err)
	}
	var list creditsv1alpha1.UserCreditsList
	if err := s.opts.APIReader.List(ctx, &list, client.InNamespace(s.opts.Namespace),
		client.MatchingLabelsSelector{Selector: labels.NewSelector().Add(*req)}, client.Limit(maxPayers)); err != nil {
		return nil, fmt.Errorf("confirming that no purchase names payment %s: %w", pi, err)
	}
	var users []string
	for _, obj := range list.Items {
		named := slices.ContainsFunc(obj.Spec.Lots, func(l creditsv1alpha1.Lot) bool { return l.Payment == pi })
		if named && !slices.Contains(users, obj.Spec.UserID) {
			users = append(users, obj.Spec.UserID)
		}
	}
	return users, nil
}
