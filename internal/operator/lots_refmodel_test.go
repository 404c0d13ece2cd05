package operator_test

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"
)

// The reference model of one user's credit lots that TestLotsMatchTheModel checks the
// operator against. It is written from the contract (docs/api.md, docs/reservations.md,
// issue 20), not from internal/account, so that the two can disagree: each grant is a lot
// spent in its turn (the lowest priority first, then the soonest expiry, never-expiring last,
// then the oldest); holds remember their lots; a set above the balance adds to the
// "balance" lot, one below takes in spending order; lots whose time is up are removed by
// the next write or by the controller; credits a hold returns to a closed lot are removed.

const (
	refBalanceLot      = "balance"
	refDefaultPriority = 50
	// refNew names a lot or hold the operator has named and the model not yet learned.
	refNew = "?"
)

// refLot is one lot.
type refLot struct {
	id                 string
	credits, remaining int64
	expiresAt          time.Time // zero: never
	priority           int32
	source, reason     string
	reference          string    // a CreditGrant's lot: the CreditGrant's name
	grantedAt          time.Time // to the second, as stored; zero until learned
	age                int       // the order lots were made in: "the oldest" within one second
	closed             string    // "", "voided" or "expired"
	closedAt           time.Time
	closedUnknown      bool // closedAt not learned yet
}

func (l *refLot) due(now time.Time) bool { return !l.expiresAt.IsZero() && !now.Before(l.expiresAt) }

// refPart is what a hold took from one lot.
type refPart struct {
	lot string
	n   int64
}

type refHold struct {
	id      string
	credits int64
	from    []refPart // never empty in the model
}

// refEntry is one history entry; balance is the available balance after it.
type refEntry struct {
	kind           string
	credits, value int64
	// alone is an expiry's balance had the controller removed it in a write of its own just
	// before the operation the model folded it into (the two race at the lot's time).
	alone int64
}

func (e refEntry) String() string { return fmt.Sprintf("%s %d→%d", e.kind, e.credits, e.value) }

// refClosedHold is how a hold ended, for repeats of its capture or release.
type refClosedHold struct {
	state          string // "captured" or "released"
	held, captured int64
	result         int64
}

// refKey is an applied Idempotency-Key: what was asked, and the answer.
type refKey struct {
	request string
	answer  refAnswer
}

type refAnswer struct {
	status int
	body   string
}

type refModel struct {
	lots    []refLot // in the order stored
	holds   []refHold
	closed  map[string]refClosedHold
	keys    map[string]refKey
	history []refEntry
	made    int
	// created is the object's creationTimestamp: the grantedAt of the balance lot a record
	// without spec.lots stands for.
	created time.Time
	now     time.Time // when the operation being decided is
}

func newRefModel() *refModel {
	return &refModel{closed: map[string]refClosedHold{}, keys: map[string]refKey{}}
}

func (m *refModel) clone() *refModel {
	c := *m
	c.lots = slices.Clone(m.lots)
	c.holds = slices.Clone(m.holds)
	for i := range c.holds {
		c.holds[i].from = slices.Clone(c.holds[i].from)
	}
	c.closed, c.keys = maps.Clone(m.closed), maps.Clone(m.keys)
	c.history = slices.Clone(m.history)
	return &c
}

func (m *refModel) available() int64 {
	var n int64
	for _, l := range m.lots {
		n += l.remaining
	}
	return n
}

// heldFrom is what the open holds took from lot id.
func (m *refModel) heldFrom(id string) int64 {
	var n int64
	for _, h := range m.holds {
		for _, p := range h.from {
			if p.lot == id {
				n += p.n
			}
		}
	}
	return n
}

func (m *refModel) lot(id string) int {
	return slices.IndexFunc(m.lots, func(l refLot) bool { return l.id == id })
}

// spentBefore is the contract's order: the lowest priority first, then the soonest expiry
// (never-expiring last), then the oldest. Lots are stored to the second; within a second the
// older is the one made first.
func spentBefore(a, b *refLot) int {
	if c := cmp.Compare(a.priority, b.priority); c != 0 {
		return c
	}
	switch {
	case a.expiresAt.IsZero() != b.expiresAt.IsZero():
		if a.expiresAt.IsZero() {
			return 1
		}
		return -1
	case !a.expiresAt.Equal(b.expiresAt):
		return a.expiresAt.Compare(b.expiresAt)
	}
	if c := a.grantedAt.Compare(b.grantedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.age, b.age)
}

// order is the indices of the lots in spending order.
func (m *refModel) order() []int {
	idx := make([]int, len(m.lots))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(i, j int) int { return spentBefore(&m.lots[i], &m.lots[j]) })
	return idx
}

// take takes n credits from the open lots in spending order; the caller checked there are n.
func (m *refModel) take(n int64) []refPart {
	var from []refPart
	for _, i := range m.order() {
		l := &m.lots[i]
		if n == 0 {
			break
		}
		if l.closed != "" || l.remaining == 0 {
			continue
		}
		part := min(n, l.remaining)
		l.remaining, n = l.remaining-part, n-part
		from = append(from, refPart{l.id, part})
	}
	return from
}

// balanceLot is the index of the balance lot, made (empty, granted now) when there is none.
func (m *refModel) balanceLot() int {
	if i := m.lot(refBalanceLot); i >= 0 {
		return i
	}
	m.made++
	m.lots = append(m.lots, refLot{id: refBalanceLot, credits: 0, priority: refDefaultPriority, source: "set", age: m.made})
	return len(m.lots) - 1
}

// give returns a hold's credits to their lots: to a lot gone by hand, as the balance lot; to
// a closed lot, removed (the entries of their removal are returned, after the operation's).
func (m *refModel) give(parts []refPart) []refEntry {
	var removed []refEntry
	for _, p := range parts {
		i := m.lot(p.lot)
		if i < 0 {
			i = m.balanceLot()
		}
		l := &m.lots[i]
		switch l.closed {
		case "voided":
			removed = append(removed, refEntry{kind: "void", credits: p.n})
		case "expired":
			removed = append(removed, refEntry{kind: "expire", credits: p.n})
		default:
			l.remaining += p.n
		}
	}
	for i := range removed {
		removed[i].value = m.available()
	}
	return removed
}

// expireDue closes the open lots whose time is up at now, recording each removal with the
// balance after it, and reports whether any was due.
func (m *refModel) expireDue(now time.Time) bool {
	any, from := false, len(m.history)
	for i := range m.lots {
		l := &m.lots[i]
		if l.closed != "" || !l.due(now) {
			continue
		}
		any = true
		n := l.remaining
		l.remaining, l.closed, l.closedUnknown = 0, "expired", true
		if n > 0 { // all of it held: the hold's return records the removal
			m.history = append(m.history, refEntry{kind: "expire", credits: n})
		}
	}
	for i := from; i < len(m.history); i++ { // had they been a write of their own
		m.history[i].value, m.history[i].alone = m.available(), m.available()
	}
	return any
}

// controllerActs reports whether the controller has something to remove at now: a lot due
// with credits left (a lot whose credits are all held waits for the next write).
func (m *refModel) controllerActs(now time.Time) bool {
	for _, l := range m.lots {
		if l.closed == "" && l.due(now) && l.remaining > 0 {
			return true
		}
	}
	return false
}

// controllerExpire is the controller's write at now, when it has one to make.
func (m *refModel) controllerExpire(now time.Time) bool {
	if !m.controllerActs(now) {
		return false
	}
	from := len(m.history)
	m.expireDue(now)
	m.afterWrite()
	m.settleHistory(from)
	return true
}

// settleHistory gives the entries one write made, from index from on, the balance after
// that write: the contract (docs/reservations.md) has every entry of one write show it,
// such as a consume and the expiry of the lots that were due before it.
func (m *refModel) settleHistory(from int) {
	for i := from; i < len(m.history); i++ {
		m.history[i].value = m.available()
	}
}

// nextDue is when the next open lot's time is up; zero when none expires.
func (m *refModel) nextDue() time.Time {
	var next time.Time
	for _, l := range m.lots {
		if l.closed == "" && !l.expiresAt.IsZero() && (next.IsZero() || l.expiresAt.Before(next)) {
			next = l.expiresAt
		}
	}
	return next
}

// afterWrite is what every write does last: a grant with nothing left, spent or held, is
// closed as spent (kept, to answer a void "nothing left"), the balance lot dropped; of the
// closed lots no hold took from, the last refMaxClosedLots closed are kept; a record whose
// only lot is the plain balance lot stores no lots, and reads back as one granted at its
// creation.
func (m *refModel) afterWrite() {
	m.lots = slices.DeleteFunc(m.lots, func(l refLot) bool {
		return l.id == refBalanceLot && l.closed == "" && l.remaining == 0 && m.heldFrom(l.id) == 0
	})
	for i := range m.lots {
		if l := &m.lots[i]; l.closed == "" && l.remaining == 0 && m.heldFrom(l.id) == 0 {
			l.closed, l.closedUnknown = "spent", true
		}
	}
	m.trimClosed()
	if i := m.lot(refBalanceLot); i >= 0 { // not a grant: its credits are what it holds
		m.lots[i].credits = max(1, m.lots[i].remaining+m.heldFrom(refBalanceLot))
	}
	if len(m.lots) == 1 && m.plainBalance(&m.lots[0]) {
		m.lots[0].grantedAt, m.lots[0].age = m.created, 0
	}
}

func (m *refModel) plainBalance(l *refLot) bool {
	return l.id == refBalanceLot && l.closed == "" && l.source == "set" && l.priority == refDefaultPriority &&
		l.expiresAt.IsZero() && l.reason == ""
}

// storesLots reports whether the record shows its lots in spec.lots.
func (m *refModel) storesLots() bool {
	return !(len(m.lots) == 0 || len(m.lots) == 1 && m.plainBalance(&m.lots[0]))
}

// record adds a history entry with the balance after it.
func (m *refModel) record(kind string, credits int64) {
	m.history = append(m.history, refEntry{kind: kind, credits: credits, value: m.available()})
}

// flatten is kubectl removing spec.lots and setting spec.credits to n: the whole balance is
// one lot again, granted when the record was created (there, empty, while holds keep
// credits of it).
func (m *refModel) flatten(n int64) {
	m.lots = nil
	if n > 0 || m.heldFrom(refBalanceLot) > 0 {
		m.lots = []refLot{{id: refBalanceLot, credits: n, remaining: n, priority: refDefaultPriority, source: "set", grantedAt: m.created}}
	}
}

// refMaxClosedLots is how many closed lots no hold took from a record keeps (account.MaxClosedLots).
const refMaxClosedLots = 20

// trimClosed drops the closed lots no hold took from beyond the last refMaxClosedLots,
// oldest closed first (one closed by this write, its time not learned yet, is the newest).
func (m *refModel) trimClosed() {
	var dead []int
	for i, l := range m.lots {
		if l.closed != "" && m.heldFrom(l.id) == 0 {
			dead = append(dead, i)
		}
	}
	if len(dead) <= refMaxClosedLots {
		return
	}
	slices.SortStableFunc(dead, func(i, j int) int {
		a, b := m.lots[i], m.lots[j]
		switch {
		case a.closedUnknown != b.closedUnknown:
			if a.closedUnknown {
				return 1
			}
			return -1
		}
		return a.closedAt.Compare(b.closedAt)
	})
	drop := map[string]bool{}
	for _, i := range dead[:len(dead)-refMaxClosedLots] {
		drop[m.lots[i].id] = true
	}
	m.lots = slices.DeleteFunc(m.lots, func(l refLot) bool { return drop[l.id] })
}
