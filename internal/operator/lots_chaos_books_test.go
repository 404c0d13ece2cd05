package operator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// checkChaosBooks checks a chaos run's outcome (TestLotsChaos), the replicas still serving.
func checkChaosBooks(t *testing.T, p *chaosPlan, seen *lotsWatch, admin string, fleet *chaosFleet) {
	t.Helper()
	twice := 0
	for _, c := range append(append(append([]*chaosKeyed{}, p.grants...), p.consumes...), p.voids...) {
		c.mu.Lock()
		switch {
		case len(c.bodies) == 0:
			t.Errorf("%s never answered 200", c.key)
		case c.applied > 1:
			twice++
			t.Errorf("%s applied %d times (answers %v)", c.key, c.applied, c.bodies)
		case strings.Count(strings.Join(c.bodies, "\n"), c.bodies[0]) != len(c.bodies):
			t.Errorf("%s answered differently: %v", c.key, c.bodies)
		}
		c.mu.Unlock()
	}
	t.Logf("%d grants, %d consumes and %d voids: %d applied twice by their answers", len(p.grants), len(p.consumes), len(p.voids), twice)

	var list creditsv1alpha1.UserCreditsList
	if err := k8sClient.List(context.Background(), &list, client.InNamespace(chaosNamespace)); err != nil {
		t.Fatal(err)
	}
	stored := map[string]*creditsv1alpha1.UserCredits{}
	for i := range list.Items {
		obj := &list.Items[i]
		if _, dup := stored[obj.Spec.UserID]; dup {
			t.Errorf("%s: two objects", obj.Spec.UserID)
		}
		stored[obj.Spec.UserID] = obj
	}
	late, worst := 0, time.Duration(0)
	for _, user := range p.users {
		obj := stored[user]
		if obj == nil {
			t.Errorf("%s: no object", user)
			continue
		}
		books := newChaosBooks(p, user)
		for _, problem := range books.check(obj) {
			t.Errorf("%s: %s", user, problem)
		}
		late += books.late
		worst = max(worst, books.worst)
		if c := apimeta.FindStatusCondition(obj.Status.Conditions, "Valid"); c == nil || c.Status != "True" {
			t.Errorf("%s: Valid condition %v", user, c)
		}
		var history struct {
			Transactions []chaosEntry `json:"transactions"`
		}
		chaosGet(t, fleet, admin, "/api/credits/transactions", user, &history)
		if err := checkHistory(history.Transactions, obj.Spec.Credits); err != nil {
			t.Errorf("%s: history: %v", user, err)
		}
	}
	seen.mu.Lock()
	defer seen.mu.Unlock()
	var watched time.Duration
	for _, d := range seen.expired {
		watched = max(watched, d)
	}
	t.Logf("%d users; lots expired late: %d, the latest closedAt %v after its time; the watch saw %d stored versions and %d expiries, "+
		"the last first seen %v after its time", len(p.users), late, worst, seen.versions, len(seen.expired), watched.Round(time.Millisecond))
	for _, b := range seen.broken {
		t.Errorf("a stored version broke the lot invariant: %s", b)
	}
}

// chaosBooks is what one user's record must say.
type chaosBooks struct {
	user     string
	balance  int64             // granted − consumed − expired − voided
	expiring []*chaosKeyed     // grants whose lots expire whole
	voided   *chaosKeyed       // the grant whose lot was voided
	cg       *chaosCreditGrant // the user's CreditGrant
	late     int
	worst    time.Duration
}

func newChaosBooks(p *chaosPlan, user string) *chaosBooks {
	b := &chaosBooks{user: user, voided: p.toVoid[user]}
	for _, g := range p.grants {
		switch {
		case g.user != user:
		case !g.expires.IsZero():
			b.expiring = append(b.expiring, g) // granted, then expired whole
		case g != b.voided:
			b.balance += g.credits
		}
	}
	for _, c := range p.consumes {
		if c.user == user {
			b.balance -= c.credits
		}
	}
	for _, cg := range p.creditGrants {
		if cg.user == user {
			b.cg = cg
			if cg.expires.IsZero() {
				b.balance += cg.credits
			}
		}
	}
	return b
}

// check compares obj with the books: the balance, each expiring lot stored once and closed
// as expired within the bound, the voided lot closed, the CreditGrant's one lot.
func (b *chaosBooks) check(obj *creditsv1alpha1.UserCredits) []string {
	var problems []string
	if err := lotInvariant(obj); err != nil {
		problems = append(problems, err.Error())
	}
	if obj.Spec.Credits != b.balance {
		problems = append(problems, fmt.Sprintf("%d credits stored, the books say %d (granted − consumed − expired − voided): "+
			"a request applied twice, or lost", obj.Spec.Credits, b.balance))
	}
	closedAs := func(l creditsv1alpha1.Lot, how string, credits int64, expires time.Time) {
		switch {
		case l.Closed != how || l.Remaining != 0 || l.Credits != credits || l.ClosedAt == nil:
			problems = append(problems, fmt.Sprintf("lot %s: %d of %d left, closed %q at %v; want %d, closed %q", l.ID, l.Remaining, l.Credits,
				l.Closed, l.ClosedAt, credits, how))
		case how == "expired":
			late := l.ClosedAt.Sub(expires)
			b.worst = max(b.worst, late)
			if late > chaosExpiryBound {
				b.late++
				problems = append(problems, fmt.Sprintf("lot %s expiring %s closed at %s: over %v late", l.ID, refTime(expires), refTime(l.ClosedAt.Time), chaosExpiryBound))
			}
		}
	}
	find := func(what string, match func(l creditsv1alpha1.Lot) bool) (creditsv1alpha1.Lot, bool) {
		var found []creditsv1alpha1.Lot
		for _, l := range obj.Spec.Lots {
			if match(l) {
				found = append(found, l)
			}
		}
		if len(found) != 1 {
			problems = append(problems, fmt.Sprintf("%d lots of %s, want 1: %+v", len(found), what, found))
			return creditsv1alpha1.Lot{}, false
		}
		return found[0], true
	}
	for _, g := range b.expiring {
		if l, ok := find("grant "+g.key, func(l creditsv1alpha1.Lot) bool {
			return l.Source == "api" && l.Reason == g.reason && l.ExpiresAt != nil && l.ExpiresAt.Time.Equal(g.expires) && l.Credits == g.credits
		}); ok {
			closedAs(l, "expired", g.credits, g.expires)
		}
	}
	if l, ok := find("the voided grant "+b.voided.key, func(l creditsv1alpha1.Lot) bool { return l.Reason == chaosVoidReason }); ok {
		closedAs(l, "voided", b.voided.credits, time.Time{})
	}
	if l, ok := find("CreditGrant "+b.cg.name, func(l creditsv1alpha1.Lot) bool { return l.Reference == b.cg.name }); ok {
		if l.Source != "gitops" || l.Credits != b.cg.credits {
			problems = append(problems, fmt.Sprintf("CreditGrant %s's lot %+v", b.cg.name, l))
		}
		if !b.cg.expires.IsZero() {
			closedAs(l, "expired", b.cg.credits, b.cg.expires)
		}
		problems = append(problems, b.checkCreditGrant(l.ID)...)
	}
	return problems
}

// checkCreditGrant: the user's CreditGrant is Applied, naming lot, at a time.
func (b *chaosBooks) checkCreditGrant(lot string) []string {
	var cg creditsv1alpha1.CreditGrant
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: chaosNamespace, Name: b.cg.name}, &cg); err != nil {
		return []string{err.Error()}
	}
	c := apimeta.FindStatusCondition(cg.Status.Conditions, creditsv1alpha1.ConditionApplied)
	if c == nil || c.Status != "True" || cg.Status.LotID != lot || cg.Status.AppliedAt == nil {
		return []string{fmt.Sprintf("CreditGrant %s: status %+v, want Applied, naming lot %s", b.cg.name, cg.Status, lot)}
	}
	return nil
}

// chaosEntry is one entry of GET /api/credits/transactions.
type chaosEntry struct {
	Type    string `json:"type"`
	Credits int64  `json:"credits"`
	Balance int64  `json:"balance"`
	At      string `json:"at"`
}

// checkHistory: the history (newest first, the last 100) adds up: from its oldest write
// on, each write's entries (one write's share its time and the balance after it) move the
// balance by what they say, and the newest shows the balance stored.
func checkHistory(entries []chaosEntry, balance int64) error {
	if len(entries) == 0 {
		return fmt.Errorf("empty")
	}
	if entries[0].Balance != balance {
		return fmt.Errorf("the newest entry %+v, the balance stored %d", entries[0], balance)
	}
	// The oldest write's entries (some maybe already out of the window) are the start.
	first := len(entries) - 1
	for first > 0 && entries[first-1].At == entries[first].At && entries[first-1].Balance == entries[first].Balance {
		first--
	}
	running := entries[first].Balance
	for i := first - 1; i >= 0; i-- {
		e := entries[i]
		switch e.Type {
		case "grant":
			running += e.Credits
		case "consume", "expire", "void":
			running -= e.Credits
		default:
			return fmt.Errorf("entry %+v: no such change in this run", e)
		}
		sameWrite := i > 0 && entries[i-1].At == e.At && entries[i-1].Balance == e.Balance
		if !sameWrite && running != e.Balance {
			return fmt.Errorf("entry %d from the newest %+v: the entries before it make the balance %d", i, e, running)
		}
	}
	return nil
}
