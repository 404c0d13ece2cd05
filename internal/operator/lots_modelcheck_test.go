package operator_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// How TestLotsMatchTheModel compares the reference model with what the operator stored and
// serves: both rendered to the same text, so that a mismatch shows as two readable blocks.

func refTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// render is the model as the record must store it: spec.credits, spec.lots (absent when the
// only lot is the plain balance lot) and spec.reservations with the lots they took from
// (absent when all came from the balance lot).
func (m *refModel) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "credits %d\n", m.available())
	if m.storesLots() {
		for _, l := range m.lots {
			fmt.Fprintf(&b, "lot %s %d of %d expires %s priority %d %s %q %q granted %s %s\n", l.id, l.remaining, l.credits,
				refTime(l.expiresAt), l.priority, l.source, l.reference, l.reason, refTime(l.grantedAt), l.closed)
		}
	}
	for _, h := range m.holds {
		from := h.from
		if len(from) == 1 && from[0].lot == refBalanceLot {
			from = nil
		}
		fmt.Fprintf(&b, "hold %s %d from %v\n", h.id, h.credits, from)
	}
	return b.String()
}

// renderStored is the stored record in render's form.
func renderStored(obj *creditsv1alpha1.UserCredits) string {
	var b strings.Builder
	fmt.Fprintf(&b, "credits %d\n", obj.Spec.Credits)
	for _, l := range obj.Spec.Lots {
		expires := time.Time{}
		if l.ExpiresAt != nil {
			expires = l.ExpiresAt.Time
		}
		fmt.Fprintf(&b, "lot %s %d of %d expires %s priority %d %s %q %q granted %s %s\n", l.ID, l.Remaining, l.Credits,
			refTime(expires), l.Priority, l.Source, l.Reference, l.Reason, refTime(l.GrantedAt.Time), l.Closed)
	}
	for _, r := range obj.Spec.Reservations {
		var from []refPart
		for _, p := range r.From {
			from = append(from, refPart{p.Lot, p.Credits})
		}
		fmt.Fprintf(&b, "hold %s %d from %v\n", r.ID, r.Credits, from)
	}
	return b.String()
}

// lotInvariant checks what every stored record must satisfy, whatever the model says:
// spec.credits is the sum of the lots' remaining credits and never negative, every hold's
// lots add up to its credits, no lot has more left than it was granted, a closed lot has
// nothing left.
func lotInvariant(obj *creditsv1alpha1.UserCredits) error {
	var problems []string
	if obj.Spec.Credits < 0 {
		problems = append(problems, fmt.Sprintf("negative balance %d", obj.Spec.Credits))
	}
	if len(obj.Spec.Lots) > 0 {
		var sum int64
		for _, l := range obj.Spec.Lots {
			sum += l.Remaining
			if l.Remaining > l.Credits || l.Remaining < 0 {
				problems = append(problems, fmt.Sprintf("lot %s has %d left of %d", l.ID, l.Remaining, l.Credits))
			}
			if l.Closed != "" && l.Remaining != 0 {
				problems = append(problems, fmt.Sprintf("closed lot %s has %d left", l.ID, l.Remaining))
			}
		}
		if sum != obj.Spec.Credits {
			problems = append(problems, fmt.Sprintf("spec.credits %d, the lots hold %d", obj.Spec.Credits, sum))
		}
	}
	for _, r := range obj.Spec.Reservations {
		var sum int64
		for _, p := range r.From {
			sum += p.Credits
		}
		if len(r.From) > 0 && sum != r.Credits {
			problems = append(problems, fmt.Sprintf("hold %s of %d took %d from its lots", r.ID, r.Credits, sum))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("lot invariant broken: %s", strings.Join(problems, "; "))
	}
	return nil
}

// learn fills in what the operator chose and the model cannot know: the ID and grant time
// of a new lot, the grant time of a new balance lot, when a lot closed. Each must lie
// between the request's start (to the second) and now.
func (m *refModel) learn(obj *creditsv1alpha1.UserCredits, sent time.Time) []string {
	var problems []string
	if m.created.IsZero() {
		m.created = obj.CreationTimestamp.Time
		if len(m.lots) == 1 && m.plainBalance(&m.lots[0]) {
			m.lots[0].grantedAt = m.created
		}
	}
	stored := map[string]creditsv1alpha1.Lot{}
	var unknown []string
	for _, l := range obj.Spec.Lots {
		stored[l.ID] = l
		if m.lot(l.ID) < 0 {
			unknown = append(unknown, l.ID)
		}
	}
	lower, upper := sent.Truncate(time.Second), time.Now()
	within := func(what string, at time.Time, from time.Time) {
		if at.Before(from) || at.After(upper) {
			problems = append(problems, fmt.Sprintf("%s %s, not within %s…%s", what, refTime(at), refTime(from), refTime(upper)))
		}
	}
	for i := range m.lots {
		l := &m.lots[i]
		if l.id == refNew && len(unknown) == 1 {
			l.id = unknown[0]
		}
		s, ok := stored[l.id]
		if !ok {
			continue
		}
		if l.grantedAt.IsZero() {
			l.grantedAt = s.GrantedAt.Time
			within("lot "+l.id+" granted", l.grantedAt, lower)
		}
		if l.closedUnknown && s.ClosedAt != nil {
			l.closedAt, l.closedUnknown = s.ClosedAt.Time, false
			from := lower
			if l.closed == "expired" {
				from = l.expiresAt
			}
			within("lot "+l.id+" closed", l.closedAt, from)
		}
	}
	return problems
}

// adopt takes the record's lots and holds as the model's after a mismatch was reported, so
// that the run goes on checking what follows rather than repeating one difference.
func (m *refModel) adopt(obj *creditsv1alpha1.UserCredits) {
	ages := map[string]int{}
	for _, l := range m.lots {
		ages[l.id] = l.age
	}
	m.lots = nil
	if len(obj.Spec.Lots) == 0 && obj.Spec.Credits > 0 {
		m.flatten(obj.Spec.Credits)
	}
	for _, s := range obj.Spec.Lots {
		l := refLot{id: s.ID, credits: s.Credits, remaining: s.Remaining, priority: s.Priority, source: s.Source, reason: s.Reason,
			reference: s.Reference, grantedAt: s.GrantedAt.Time, closed: s.Closed}
		if s.ExpiresAt != nil {
			l.expiresAt = s.ExpiresAt.Time
		}
		if s.ClosedAt != nil {
			l.closedAt = s.ClosedAt.Time
		}
		age, known := ages[s.ID]
		if !known {
			m.made++
			age = m.made
		}
		l.age = age
		m.lots = append(m.lots, l)
	}
	m.holds = nil
	for _, r := range obj.Spec.Reservations {
		h := refHold{id: r.ID, credits: r.Credits}
		for _, p := range r.From {
			h.from = append(h.from, refPart{p.Lot, p.Credits})
		}
		if len(h.from) == 0 {
			h.from = []refPart{{refBalanceLot, r.Credits}}
		}
		m.holds = append(m.holds, h)
	}
}

// refGrantView is one lot of GET /api/credits/grants, as the contract words it.
type refGrantView struct {
	ID        string  `json:"id"`
	Credits   int64   `json:"credits"`
	Remaining int64   `json:"remaining"`
	ExpiresAt *string `json:"expiresAt"`
	Priority  int32   `json:"priority"`
	Source    string  `json:"source"`
	Reference string  `json:"reference,omitempty"`
	Reason    string  `json:"reason"`
	GrantedAt string  `json:"grantedAt"`
}

// grantsView is GET /api/credits/grants as the model says it: the lots with credits left
// (to spend or held) whose time is not up, in spending order.
func (m *refModel) grantsView(now time.Time) string {
	out := []refGrantView{}
	for _, i := range m.order() {
		l := m.lots[i]
		held := m.heldFrom(l.id)
		if l.closed != "" || l.due(now) || l.remaining+held == 0 {
			continue
		}
		v := refGrantView{ID: l.id, Credits: l.credits, Remaining: l.remaining, Priority: l.priority, Source: l.source, Reference: l.reference,
			Reason: l.reason, GrantedAt: refTime(l.grantedAt)}
		if l.id == refBalanceLot {
			v.Credits = l.remaining + held
		}
		if !l.expiresAt.IsZero() {
			at := refTime(l.expiresAt)
			v.ExpiresAt = &at
		}
		out = append(out, v)
	}
	data, _ := json.Marshal(out)
	return string(data)
}

// servedGrants is a GET /api/credits/grants body in grantsView's form; a member the
// contract does not name fails the decoding.
func servedGrants(body string) (string, error) {
	var g struct {
		Grants []refGrantView `json:"grants"`
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil || g.Grants == nil {
		return "", fmt.Errorf("grants body %s: %v", body, err)
	}
	data, _ := json.Marshal(g.Grants)
	return string(data), nil
}

// historyView is the last 100 entries, newest first.
func (m *refModel) historyView() []string {
	var out []string
	for i := len(m.history) - 1; i >= 0 && len(out) < 100; i-- {
		out = append(out, m.history[i].String())
	}
	return out
}

// historyMatches reports whether served (newest first) is the model's history, an expiry
// shown either with the balance after the write the model folded it into or with the
// balance right after it (the controller's own write won the race at the lot's time).
func (m *refModel) historyMatches(served []string) bool {
	want := m.historyView()
	if len(served) != len(want) {
		return false
	}
	for i, got := range served {
		e := m.history[len(m.history)-1-i]
		if got != want[i] && (e.kind != "expire" || got != fmt.Sprintf("expire %d→%d", e.credits, e.alone)) {
			return false
		}
	}
	return true
}

// servedHistory is a GET /api/credits/transactions body in historyView's form.
func servedHistory(body string) ([]string, error) {
	var h struct {
		Transactions []struct {
			Type    string `json:"type"`
			Credits int64  `json:"credits"`
			Balance int64  `json:"balance"`
		} `json:"transactions"`
	}
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		return nil, fmt.Errorf("transactions body %s: %v", body, err)
	}
	var out []string
	for _, e := range h.Transactions {
		out = append(out, refEntry{kind: e.Type, credits: e.Credits, value: e.Balance}.String())
	}
	return out, nil
}

// adoptHistory takes the served history (newest first) as the model's.
func (m *refModel) adoptHistory(served []string) {
	m.history = nil
	for _, s := range slices.Backward(served) {
		var e refEntry
		fmt.Sscanf(strings.Replace(s, "→", " ", 1), "%s %d %d", &e.kind, &e.credits, &e.value)
		m.history = append(m.history, e)
	}
}
