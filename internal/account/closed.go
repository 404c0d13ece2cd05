package account

import "time"

// Recently closed holds are remembered, so that a repeated capture or release answers what
// the first one did, and a late one gets the right refusal: none older than
// ClosedHoldsMaxAge, at most ClosedHoldsMaxEntries. After that, the hold is unknown (404).
const (
	ClosedHoldsMaxAge     = 24 * time.Hour
	ClosedHoldsMaxEntries = 200
)

// How a hold ended.
const (
	closedCaptured = "captured"
	closedReleased = "released"
	closedExpired  = "expired"
)

// closedHold is one recently closed hold, stored as ledgercodec.go says; the JSON names are
// those of records written before that form, which are still read.
type closedHold struct {
	ID       string `json:"id"`
	State    string `json:"s"`
	Held     int64  `json:"h"`
	Captured int64  `json:"c,omitempty"`
	Result   int64  `json:"r"` // the available balance the closing answered
	At       int64  `json:"t"` // unix seconds
}

// closedHolds are the recently closed holds, oldest first.
type closedHolds struct {
	entries []closedHold
	damaged bool
	changed bool
}

// with returns the list with c added, within its bounds at now; the entries are copied.
func (l closedHolds) with(c closedHold, now time.Time) closedHolds {
	cutoff := now.Add(-ClosedHoldsMaxAge).Unix()
	kept := make([]closedHold, 0, len(l.entries)+1)
	for _, e := range l.entries {
		if e.At >= cutoff {
			kept = append(kept, e)
		}
	}
	kept = append(kept, c)
	if len(kept) > ClosedHoldsMaxEntries {
		kept = kept[len(kept)-ClosedHoldsMaxEntries:]
	}
	return closedHolds{entries: kept, changed: true}
}

// find returns the closed hold id, if it closed within ClosedHoldsMaxAge of now.
func (l closedHolds) find(id string, now time.Time) (closedHold, bool) {
	cutoff := now.Add(-ClosedHoldsMaxAge).Unix()
	for _, e := range l.entries {
		if e.ID == id && e.At >= cutoff {
			return e, true
		}
	}
	return closedHold{}, false
}
