package operator_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// lotsCand is one outcome the model allows for a request: the model after it, and the
// answers it must have had.
type lotsCand struct {
	m    *refModel
	want []served
}

// act sends ops at once (copies of one keyed request, or a burst) and checks the outcome.
// A request that straddles a lot's expiry may have been decided before or after it: both
// outcomes are allowed.
func (r *lotsRun) act(ops []refOp) {
	due := r.m.nextDue()
	sent := time.Now()
	got := r.send(ops)
	done := time.Now()
	nows := []time.Time{sent}
	if straddle := !due.IsZero() && sent.Before(due) && !done.Before(due); straddle {
		r.straddles++
		if distinct := slices.CompactFunc(slices.Clone(ops), func(a, b refOp) bool { return a.request() == b.request() }); len(distinct) > 1 {
			// Racing requests on both sides of an expiry: too many orders to list. Not
			// checked; the run goes on from what was stored.
			r.note("%v → %v (straddled the expiry at %s: not checked)", ops, got, refTime(due))
			c := lotsCand{m: r.m.clone()}
			r.settle([]lotsCand{c})
			r.adopt(c, ops, got, r.stored())
			return
		}
		nows = append(nows, due)
	}
	var cands []lotsCand
	for _, now := range nows {
		c := lotsCand{m: r.m.clone()}
		for _, op := range ops {
			a, replay := c.m.apply(op, now)
			if op.kind == "creditgrant" && a.status == 200 {
				a.body = "" // its answer is the Applied condition
			}
			c.want = append(c.want, served{a.status, a.body, replay})
		}
		cands = append(cands, c)
	}
	r.note("%v → %v", ops, got)
	r.observe(cands, got, sent, ops)
}

// awaitExpiry waits out a lot's expiry that is about to come, and then either lets the
// next request find the lot due (its write removes it first, or races the controller), or
// waits for the controller to remove it and checks what it stored.
func (r *lotsRun) awaitExpiry() {
	due := r.m.nextDue()
	if due.IsZero() || time.Until(due) > lotsGuard {
		return
	}
	time.Sleep(time.Until(due) + 30*time.Millisecond)
	if r.rng.IntN(2) == 0 || !r.m.controllerActs(time.Now()) {
		return
	}
	r.note("the controller removes the lots due at %s", refTime(due))
	r.observe([]lotsCand{{m: r.m.clone()}}, nil, due, nil)
}

// settle waits, when the model says the controller has lots to remove, until the record
// shows them removed, and removes them in each candidate.
func (r *lotsRun) settle(cands []lotsCand) {
	now := time.Now()
	if !slices.ContainsFunc(cands, func(c lotsCand) bool { return c.m.controllerActs(now) }) {
		return
	}
	r.waitRemoved(now)
	r.expiries++
	for _, c := range cands {
		c.m.controllerExpire(now)
	}
}

// waitRemoved waits until no stored lot due at `at` has credits left, and checks that each
// was removed within 5 s of its expiry (its closedAt, stamped by the operator).
func (r *lotsRun) waitRemoved(at time.Time) {
	pending := map[string]time.Time{}
	for {
		obj := r.stored()
		left := ""
		for _, l := range obj.Spec.Lots {
			if l.ExpiresAt == nil || at.Before(l.ExpiresAt.Time) {
				continue
			}
			if l.Closed == "" && l.Remaining > 0 {
				pending[l.ID] = l.ExpiresAt.Time
				left = fmt.Sprintf("lot %s due at %s still has %d left", l.ID, refTime(l.ExpiresAt.Time), l.Remaining)
				if time.Since(l.ExpiresAt.Time) > 8*time.Second {
					r.fail("expiry", "%s, %v after its expiry", left, time.Since(l.ExpiresAt.Time).Round(time.Millisecond))
					return
				}
			}
		}
		if left == "" {
			for _, l := range obj.Spec.Lots {
				if expires, was := pending[l.ID]; was && (l.ClosedAt == nil || l.ClosedAt.Sub(expires) > 5*time.Second) {
					r.fail("expiry", "lot %s due at %s closed at %v: not within 5 s", l.ID, refTime(expires), l.ClosedAt)
				}
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// observe settles pending expiries, then checks the answers, the stored record and what the
// API serves against the candidates; the first that matches becomes the model. None: the
// difference is reported and the model adopts the record.
func (r *lotsRun) observe(cands []lotsCand, got []served, sent time.Time, ops []refOp) {
	r.settle(cands)
	obj := r.stored()
	if err := lotInvariant(obj); err != nil {
		r.fail("invariant", "%v\nstored:\n%s", err, renderStored(obj))
	}
	var why []string
	kind := "stored record after " + what(ops)
	for i, c := range cands {
		c.fillHold(got)
		problems := c.m.learn(obj, sent)
		if !sameAnswers(c.want, got) {
			why = append(why, fmt.Sprintf("answers %v, the model says %v", got, c.want))
			if i == 0 {
				kind = "answers to " + what(ops)
			}
			continue
		}
		if want, have := c.m.render(), renderStored(obj); want != have {
			why = append(why, fmt.Sprintf("stored record differs from the model after %v\nmodel:\n%sstored:\n%s", ops, want, have))
			continue
		}
		for _, p := range problems {
			r.fail("times", "%s", p)
		}
		r.m = c.m
		r.remember(ops, got)
		r.checkServed()
		return
	}
	r.fail(kind, "%s", strings.Join(why, "\n  or "))
	r.adopt(cands[0], ops, got, obj)
}

// adopt goes on from the stored record after a difference (or an unchecked straddle): the
// model takes its lots and holds, and keeps the keys the answers show applied.
func (r *lotsRun) adopt(c lotsCand, ops []refOp, got []served, obj *creditsv1alpha1.UserCredits) {
	c.m.adopt(obj)
	for i, op := range ops {
		if op.key == "" {
			continue
		}
		if got[i].status == 200 {
			c.m.keys[op.key] = refKey{op.request(), refAnswer{got[i].status, got[i].body}}
		} else if _, seen := r.m.keys[op.key]; !seen {
			delete(c.m.keys, op.key)
		}
	}
	// The history took the same difference: start it again from what is served.
	if _, body := request(r.t, "GET", creditsURL(r.bases[0], "/api/credits/transactions", r.user), r.admin, ""); body != "" {
		if history, err := servedHistory(body); err == nil {
			c.m.adoptHistory(history)
		}
	}
	r.m = c.m
	r.checkServed()
}

// what names a step's requests for a difference's kind.
func what(ops []refOp) string {
	switch {
	case len(ops) == 0:
		return "an edit or an expiry"
	case len(ops) > 1 && ops[0].key == "":
		return "a burst of " + ops[0].kind + "s"
	}
	return ops[0].kind
}

// fillHold puts the hold ID a reserve's answer names into the candidate.
func (c lotsCand) fillHold(got []served) {
	id := ""
	for _, g := range got {
		var a struct {
			ReservationID string `json:"reservationId"`
		}
		if g.status == 200 && json.Unmarshal([]byte(g.body), &a) == nil && a.ReservationID != "" {
			id = a.ReservationID
		}
	}
	if id == "" {
		return
	}
	for i := range c.want {
		c.want[i].body = strings.Replace(c.want[i].body, refHoldIDMark, id, 1)
	}
	for i := range c.m.holds {
		if c.m.holds[i].id == refNew {
			c.m.holds[i].id = id
		}
	}
	for k, v := range c.m.keys {
		if strings.Contains(v.answer.body, refHoldIDMark) {
			v.answer.body = strings.Replace(v.answer.body, refHoldIDMark, id, 1)
			c.m.keys[k] = v
		}
	}
}

// sameAnswers compares answers as sets: which of the racing requests got which answer is
// the operator's to decide.
func sameAnswers(want, got []served) bool {
	w, g := make([]string, len(want)), make([]string, len(got))
	for i := range want {
		w[i] = want[i].String()
	}
	for i := range got {
		g[i] = got[i].String()
	}
	slices.Sort(w)
	slices.Sort(g)
	return slices.Equal(w, g)
}

// remember keeps the keyed requests that applied, to repeat later.
func (r *lotsRun) remember(ops []refOp, got []served) {
	for i, op := range ops {
		if op.key == "" || got[i].status != 200 || slices.ContainsFunc(r.recent, func(o refOp) bool { return o.key == op.key }) {
			continue
		}
		r.recent = append(r.recent, op)
		if len(r.recent) > 12 {
			r.recent = r.recent[1:]
		}
	}
}

// checkServed compares GET /api/credits and /grants through either replica with the model,
// and every few steps /transactions (the API reads the history from the apiserver within a
// per-user read budget of about one a second). A cache may lag: up to 3 s, for a difference
// not seen before. Answers that come after a lot's expiry prove nothing: the check ends.
func (r *lotsRun) checkServed() {
	r.checks++
	withHistory := r.checks%4 == 0 || r.step >= r.steps
	var upcoming time.Time // the next expiry still ahead
	for _, l := range r.m.lots {
		if l.closed == "" && l.expiresAt.After(time.Now()) && (upcoming.IsZero() || l.expiresAt.Before(upcoming)) {
			upcoming = l.expiresAt
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		if r.m.controllerActs(time.Now()) {
			return // a removal is pending: checked once it is done
		}
		base := r.bases[r.rng.IntN(2)]
		var diffs, kinds []string
		_, balance := request(r.t, "GET", creditsURL(base, "/api/credits", r.user), r.admin, "")
		if want := fmt.Sprintf(`{"credits":%d}`, r.m.available()); balance != want {
			diffs, kinds = append(diffs, fmt.Sprintf("GET /api/credits %s, want %s", balance, want)), append(kinds, "balance")
		}
		_, body := request(r.t, "GET", creditsURL(base, "/api/credits/grants", r.user), r.admin, "")
		grants, err := servedGrants(body)
		if want := r.m.grantsView(time.Now()); err != nil || grants != want {
			diffs = append(diffs, fmt.Sprintf("GET /api/credits/grants (%v)\n   %s\nwant %s", err, grants, want))
			kinds = append(kinds, "grants")
		}
		var history []string
		if withHistory {
			_, body = request(r.t, "GET", creditsURL(base, "/api/credits/transactions", r.user), r.admin, "")
			history, err = servedHistory(body)
			if want := r.m.historyView(); err != nil || !r.m.historyMatches(history) {
				diffs = append(diffs, fmt.Sprintf("GET /api/credits/transactions (%v), newest first\n   %v\nwant %v", err, history, want))
				kinds = append(kinds, "transactions")
			}
		}
		if !upcoming.IsZero() && !time.Now().Before(upcoming) {
			return
		}
		if len(diffs) == 0 {
			return
		}
		kind := "GET " + strings.Join(kinds, ", ")
		if time.Now().After(deadline) || r.kinds[kind] > 0 {
			r.fail(kind, "%s", strings.Join(diffs, "\n"))
			if slices.Contains(kinds, "transactions") && err == nil {
				r.m.adoptHistory(history)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// edit changes the record with kubectl's means, behind the API: an edit the CRD's rule
// refuses (spec.credits alone, with lots stored), one lot's remaining credits with
// spec.credits, or spec.lots removed with spec.credits set (the whole balance one lot).
func (r *lotsRun) edit() {
	if r.m.controllerActs(time.Now()) { // an edit racing the controller's removal: let it finish first
		r.note("the controller removes the lots due")
		r.observe([]lotsCand{{m: r.m.clone()}}, nil, time.Now(), nil)
	}
	r.sent["kubectl edit"]++
	obj := r.stored()
	var open []creditsv1alpha1.Lot
	for _, l := range obj.Spec.Lots {
		if l.Closed == "" {
			open = append(open, l)
		}
	}
	switch kind := r.rng.IntN(3); {
	case kind == 0 && len(obj.Spec.Lots) > 0:
		n := obj.Spec.Credits + 1 + r.rng.Int64N(5)
		err := k8sClient.Patch(lotsCtx, obj, client.RawPatch("application/merge-patch+json", []byte(fmt.Sprintf(`{"spec":{"credits":%d}}`, n))))
		r.note("kubectl: spec.credits %d alone → %v", n, err)
		if err == nil || !strings.Contains(err.Error(), "spec.credits must equal the sum of spec.lots") {
			r.fail("edit", "an edit of spec.credits alone, with lots stored: %v, want the CRD's refusal", err)
		}
	case kind == 1 && len(open) > 0:
		l := open[r.rng.IntN(len(open))]
		// Never above what the lot's holds leave of its credits: an edit into them is
		// accepted, and leaves the holds' release refused (TestLotEditLeavesHoldsReleasable).
		n := r.rng.Int64N(max(l.Remaining, l.Credits-r.m.heldFrom(l.ID)) + 1)
		err := r.patch(func(o *creditsv1alpha1.UserCredits) {
			for i := range o.Spec.Lots {
				if o.Spec.Lots[i].ID == l.ID {
					o.Spec.Credits += n - o.Spec.Lots[i].Remaining
					o.Spec.Lots[i].Remaining = n
				}
			}
		})
		r.note("kubectl: lot %s remaining %d → %d, spec.credits with it → %v", l.ID, l.Remaining, n, err)
		if err != nil {
			r.fail("edit", "an edit that keeps spec.credits the sum of the lots: %v", err)
		} else if i := r.m.lot(l.ID); i >= 0 {
			r.m.lots[i].remaining = n
		}
	default:
		n := r.rng.Int64N(30)
		err := r.patch(func(o *creditsv1alpha1.UserCredits) { o.Spec.Lots, o.Spec.Credits = nil, n })
		r.note("kubectl: spec.lots removed, spec.credits %d → %v", n, err)
		if err != nil {
			r.fail("edit", "an edit that removes spec.lots and sets spec.credits: %v", err)
		} else {
			r.m.flatten(n)
		}
	}
	r.observe([]lotsCand{{m: r.m.clone()}}, nil, time.Now(), nil)
}

// patch changes the stored record as a careful script would: a merge patch under the
// resourceVersion it read, again on a conflict.
func (r *lotsRun) patch(change func(*creditsv1alpha1.UserCredits)) error {
	for {
		obj := r.stored()
		before := obj.DeepCopy()
		change(obj)
		err := k8sClient.Patch(lotsCtx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		if !apierrors.IsConflict(err) {
			return err
		}
	}
}
