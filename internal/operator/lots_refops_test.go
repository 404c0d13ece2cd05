package operator_test

import (
	"fmt"
	"slices"
	"time"
)

// refOp is one API request to the reference model.
type refOp struct {
	kind     string // set, consume, grant, reserve, capture, release, void, creditgrant
	n        int64
	all      bool // a capture of the whole hold
	key      string
	hold     string // capture, release
	lot      string // void
	expires  time.Time
	priority *int32
	reason   string
	asUser   bool   // sent by the user with their session token (the model does not care who)
	name     string // a CreditGrant's name (its key is controllers.GrantKey(name))
	// recreate: a CreditGrant applied again, as a GitOps tool prunes and re-creates it, or
	// as an operator killed before its status write leaves it (lots_modelcg_test.go).
	recreate bool
}

// request is what a key's repeat must ask again to be a replay: the same operation, amount,
// terms (a priority left out is the default one) and lot.
func (op refOp) request() string {
	p := int32(refDefaultPriority)
	if op.priority != nil {
		p = *op.priority
	}
	return fmt.Sprintf("%s|%d|%d|%d|%q|%s", op.kind, op.n, op.expires.Unix(), p, op.reason, op.lot)
}

// Answers the contract fixes byte for byte.
const (
	refBodyKeyReused    = `{"error":"Idempotency-Key reused with a different request"}`
	refBodyInvalid      = `{"error":"Invalid credits value"}`
	refBodyHoldNotFound = `{"error":"Reservation not found"}`
	refBodyCaptured     = `{"error":"Reservation already captured"}`
	refBodyReleased     = `{"error":"Reservation already released"}`
	refBodyLotNotFound  = `{"error":"Grant not found"}`
	refBodyLotClosed    = `{"error":"Grant has nothing left"}`
	refBodyGrantExpired = `{"error":"Invalid expiresAt"}`
	// refHoldIDMark stands for the hold ID in a reserve's answer until the answer names it.
	refHoldIDMark = "<hold>"
)

func (op refOp) String() string {
	s := op.kind
	switch op.kind {
	case "capture":
		s += " " + op.hold
		if op.all {
			s += " all"
		} else {
			s += fmt.Sprintf(" %d", op.n)
		}
	case "release":
		s += " " + op.hold
	case "void":
		s += " " + op.lot
	case "creditgrant":
		s += fmt.Sprintf(" %s %d", op.name, op.n)
		if op.recreate {
			s += " again"
		}
	default:
		s += fmt.Sprintf(" %d", op.n)
	}
	if !op.expires.IsZero() {
		s += " expires " + op.expires.UTC().Format(time.TimeOnly)
	}
	if op.priority != nil {
		s += fmt.Sprintf(" priority %d", *op.priority)
	}
	if op.reason != "" {
		s += fmt.Sprintf(" reason %q", op.reason)
	}
	if op.key != "" {
		s += " key " + op.key
	}
	if op.asUser {
		s += " (user)"
	}
	return s
}

func refUpdated(n int64) refAnswer {
	return refAnswer{200, fmt.Sprintf(`{"success":true,"credits":%d}`, n)}
}

func refInsufficient(n int64) refAnswer {
	return refAnswer{402, fmt.Sprintf(`{"error":"Insufficient credits","credits":%d}`, n)}
}

func (m *refModel) holdIndex(id string) int {
	return slices.IndexFunc(m.holds, func(h refHold) bool { return h.id == id })
}

// apply is op at now: its answer, whether that answer is a replay, and (when it changes the
// record) the model after it. Lots whose time is up are removed first, in the same write.
func (m *refModel) apply(op refOp, now time.Time) (refAnswer, bool) {
	if op.key != "" {
		if k, seen := m.keys[op.key]; seen {
			if k.request == op.request() {
				return k.answer, true
			}
			return refAnswer{409, refBodyKeyReused}, false
		}
	}
	if (op.kind == "capture" || op.kind == "release") && m.holdIndex(op.hold) < 0 {
		return m.closedAnswer(op)
	}
	c := m.clone()
	c.now = now
	from := len(c.history)
	c.expireDue(now)
	ans, ok := c.decide(op)
	if !ok {
		return ans, false
	}
	c.afterWrite()
	c.settleHistory(from)
	if op.key != "" {
		c.keys[op.key] = refKey{op.request(), ans}
	}
	*m = *c
	return ans, false
}

// closedAnswer answers a capture or release of a hold that is not open.
func (m *refModel) closedAnswer(op refOp) (refAnswer, bool) {
	c, found := m.closed[op.hold]
	if !found {
		return refAnswer{404, refBodyHoldNotFound}, false
	}
	captured := op.n
	if op.all {
		captured = c.held
	}
	switch {
	case c.state == "captured" && op.kind == "capture" && captured == c.captured, c.state == "released" && op.kind == "release":
		return refUpdated(c.result), true
	case c.state == "captured":
		return refAnswer{409, refBodyCaptured}, false
	}
	return refAnswer{409, refBodyReleased}, false
}

// decide is op on m (its due lots removed); false: refused, m is to be dropped.
func (m *refModel) decide(op refOp) (refAnswer, bool) {
	switch op.kind {
	case "set":
		switch avail := m.available(); {
		case op.n < avail:
			m.take(avail - op.n)
		case op.n > avail:
			l := &m.lots[m.balanceLot()]
			l.closed, l.closedUnknown = "", false // a set makes the balance what it says
			l.remaining += op.n - avail
		}
		m.record("set", op.n)
		return refUpdated(op.n), true
	case "consume":
		if m.available() < op.n {
			return refInsufficient(m.available()), false
		}
		m.take(op.n)
		m.record("consume", op.n)
		return refUpdated(m.available()), true
	case "grant", "creditgrant":
		if !op.expires.IsZero() && !m.now.Before(op.expires) {
			return refAnswer{400, refBodyGrantExpired}, false
		}
		m.made++
		p := int32(refDefaultPriority)
		if op.priority != nil {
			p = *op.priority
		}
		l := refLot{id: refNew, credits: op.n, remaining: op.n, expiresAt: op.expires, priority: p, source: "api", reason: op.reason, age: m.made}
		if op.kind == "creditgrant" {
			l.source, l.reference = "gitops", op.name
		}
		m.lots = append(m.lots, l)
		m.record("grant", op.n)
		return refUpdated(m.available()), true
	case "reserve":
		if m.available() < op.n {
			return refInsufficient(m.available()), false
		}
		m.holds = append(m.holds, refHold{id: refNew, credits: op.n, from: m.take(op.n)})
		m.record("reserve", op.n)
		return refAnswer{200, fmt.Sprintf(`{"success":true,"reservationId":"%s","credits":%d}`, refHoldIDMark, m.available())}, true
	case "capture", "release":
		return m.close(op)
	case "void":
		i := m.lot(op.lot)
		if i < 0 {
			return refAnswer{404, refBodyLotNotFound}, false
		}
		l := &m.lots[i]
		if l.closed != "" || l.remaining == 0 && m.heldFrom(l.id) == 0 {
			return refAnswer{409, refBodyLotClosed}, false
		}
		n := l.remaining
		l.remaining, l.closed, l.closedUnknown = 0, "voided", true
		m.record("void", n)
		return refUpdated(m.available()), true
	}
	panic("unknown operation " + op.kind)
}

// close captures (spending the hold's lots in spending order, a lot gone by hand last) or
// releases an open hold; what is not spent returns to its lots.
func (m *refModel) close(op refOp) (refAnswer, bool) {
	i := m.holdIndex(op.hold)
	h := m.holds[i]
	spend := int64(0)
	if op.kind == "capture" {
		spend = op.n
		if op.all {
			spend = h.credits
		}
		if spend > h.credits {
			return refAnswer{400, refBodyInvalid}, false
		}
	}
	parts := slices.Clone(h.from)
	rank := func(p refPart) *refLot {
		if j := m.lot(p.lot); j >= 0 {
			return &m.lots[j]
		}
		return &refLot{priority: 1 << 30} // gone by hand: spent last
	}
	slices.SortStableFunc(parts, func(a, b refPart) int { return spentBefore(rank(a), rank(b)) })
	var rest []refPart
	left := spend
	for _, p := range parts {
		s := min(left, p.n)
		left -= s
		if p.n > s {
			rest = append(rest, refPart{p.lot, p.n - s})
		}
	}
	m.holds = slices.Delete(m.holds, i, i+1)
	removed := m.give(rest)
	closed := refClosedHold{state: "released", held: h.credits}
	if op.kind == "capture" {
		closed.state, closed.captured = "captured", spend
		m.record("capture", spend)
	} else {
		m.record("release", h.credits)
	}
	m.history = append(m.history, removed...)
	closed.result = m.available()
	m.closed[h.id] = closed
	return refUpdated(m.available()), true
}
