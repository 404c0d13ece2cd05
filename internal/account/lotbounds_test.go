package account

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// grantN grants n lots of 1 credit, each with its own reason (so that none join another).
func grantN(t *testing.T, r *record, n int, prefix string, now time.Time) {
	t.Helper()
	for i := range n {
		op := Operation{Kind: OpGrant, Amount: 1, Terms: LotTerms{ID: fmt.Sprintf("%s%d", prefix, i), Reason: fmt.Sprintf("%s %d", prefix, i)}}
		if _, _, err := r.do(op, now); err != nil {
			t.Fatalf("grant %s%d: %v", prefix, i, err)
		}
	}
}

// closedLots counts r's lots closed with why, or closed at all for "".
func closedLots(r *record, why string) int {
	n := 0
	for _, l := range r.account().Lots {
		if l.Closed != "" && (why == "" || l.Closed == why) {
			n++
		}
	}
	return n
}

// TestAccountClosedLotsAHoldTookFromAreKept: with MaxClosedLots closed lots kept, a lot a
// hold took from that is voided or expires is one more closed lot, kept until the hold
// returns its credits (which it removes); only then is the oldest closed lot dropped.
func TestAccountClosedLotsAHoldTookFromAreKept(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, end := range []string{lotVoided, lotExpired} {
		r := newRecord(t, 5)
		grantN(t, r, MaxClosedLots, "old", now)
		for i := range MaxClosedLots {
			if _, _, err := r.do(Operation{Kind: OpVoid, Terms: LotTerms{ID: fmt.Sprint("old", i)}}, now); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := r.do(grantLot("promo", 3, 0, now.Add(time.Minute)), now); err != nil {
			t.Fatal(err)
		}
		hold := reserve("h", 2)
		hold.TTL = time.Hour
		if _, _, err := r.do(hold, now); err != nil {
			t.Fatal(err)
		}
		later := now
		if end == lotVoided {
			if res, _, err := r.do(Operation{Kind: OpVoid, Terms: LotTerms{ID: "promo"}}, now); err != nil || res.Credits != 5 {
				t.Fatalf("void of the held promotion with %d closed lots kept: %+v %v", MaxClosedLots, res, err)
			}
		} else {
			later = now.Add(time.Minute)
			if res, _, err := r.do(Operation{Kind: OpExpire}, later); err != nil || res.Credits != 5 {
				t.Fatalf("expiry of the held promotion with %d closed lots kept: %+v %v", MaxClosedLots, res, err)
			}
		}
		if n := closedLots(r, ""); n != MaxClosedLots+1 {
			t.Fatalf("%s: %d closed lots, want %d (the held one kept beside the last %d)", end, n, MaxClosedLots+1, MaxClosedLots)
		}
		if res, _, err := r.do(Operation{Kind: OpRelease, ReservationID: "h"}, later); err != nil || res.Credits != 5 {
			t.Fatalf("%s: release: %+v %v, want its 2 credits removed", end, res, err)
		}
		if h := r.account().History(); h[0].Credits != 2 || h[0].Reference != "promo" {
			t.Fatalf("%s: the removal of the returned credits: %+v", end, h[0])
		}
		if n := len(r.account().Lots); n != MaxClosedLots+1 { // the balance lot and the last 20 closed
			t.Fatalf("%s: %d lots kept after the release, want %d", end, n, MaxClosedLots+1)
		}
		if _, _, err := r.do(Operation{Kind: OpVoid, Terms: LotTerms{ID: "old0"}}, later); !errors.Is(err, ErrLotNotFound) {
			t.Fatalf("%s: the oldest closed lot is dropped: %v", end, err)
		}
	}
}

// TestAccountSpentLotIsClosed: a grant spent to nothing is kept closed, so that a void of
// it is told it has nothing left (409), not that it is unknown; only the last
// MaxClosedLots are kept.
func TestAccountSpentLotIsClosed(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	_, _, _ = r.do(grantLot("g", 2, 0, time.Time{}), now)
	_, _, _ = r.do(Operation{Kind: OpConsume, Amount: 2}, now)
	if _, _, err := r.do(Operation{Kind: OpVoid, Terms: LotTerms{ID: "g"}}, now); !errors.Is(err, ErrLotClosed) {
		t.Fatalf("void of a lot just spent: %v, want ErrLotClosed", err)
	}
	grantN(t, r, 30, "x", now)
	if _, _, err := r.do(Operation{Kind: OpConsume, Amount: 30}, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, all := closedLots(r, lotSpent), len(r.account().Lots); n != MaxClosedLots || all != MaxClosedLots {
		t.Fatalf("%d spent lots kept of %d lots, want the last %d", n, all, MaxClosedLots)
	}
	if _, _, err := r.do(Operation{Kind: OpVoid, Terms: LotTerms{ID: "x29"}}, now); !errors.Is(err, ErrLotClosed) {
		t.Fatalf("void of the last lot spent: %v", err)
	}
}

// TestAccountBalanceLotIsBeyondTheLotBound: a user with MaxLots grants left can still be
// set higher (the balance lot is not a grant), and a hold's return to a lot removed by
// hand goes to the balance lot too.
func TestAccountBalanceLotIsBeyondTheLotBound(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	grantN(t, r, MaxLots, "g", now)
	if res, _, err := r.do(Operation{Kind: OpSet, Amount: 150}, now); err != nil || res.Credits != 150 {
		t.Fatalf("set 150 with %d lots: %+v %v", MaxLots, res, err)
	}
	if rem := remaining(r.account()); len(rem) != MaxLots+1 || rem[BalanceLotID] != 50 {
		t.Fatalf("lots after the set: %d, balance lot %d", len(rem), rem[BalanceLotID])
	}
	if _, _, err := r.do(Operation{Kind: OpGrant, Amount: 1, Terms: LotTerms{Reason: "one more"}}, now); !errors.Is(err, ErrTooManyLots) {
		t.Fatalf("a grant past %d grants: %v", MaxLots, err)
	}
	// MaxLots grants and no balance lot; a hold of the first, which is then removed by hand
	// and another lot added: its release goes to the balance lot, a lot beyond the bound.
	r2 := newRecord(t, 0)
	grantN(t, r2, MaxLots, "g", now)
	if _, _, err := r2.do(reserve("h", 1), now); err != nil {
		t.Fatal(err)
	}
	r2.obj.Spec.Lots[0].ID = "by-hand" // g0, spent by the hold: now a lot it did not take from
	r2.obj.Spec.Lots[0].Remaining, r2.obj.Spec.Credits = 1, r2.obj.Spec.Credits+1
	if res, _, err := r2.do(Operation{Kind: OpRelease, ReservationID: "h"}, now); err != nil || res.Credits != MaxLots+1 {
		t.Fatalf("release to a lot removed by hand with %d lots left: %+v %v", MaxLots, res, err)
	}
	if rem := remaining(r2.account()); len(rem) != MaxLots+1 || rem[BalanceLotID] != 1 {
		t.Fatalf("after the release: %d lots, the balance lot %d", len(rem), rem[BalanceLotID])
	}
}

// TestAccountVoidedBalanceLotIsOpenedAgain: a set after a void of the balance lot adds to
// it again rather than to a closed lot.
func TestAccountVoidedBalanceLotIsOpenedAgain(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 5)
	_, _, _ = r.do(grantLot("g", 2, 50, time.Time{}), now)
	if _, _, err := r.do(Operation{Kind: OpVoid, Terms: LotTerms{ID: BalanceLotID}}, now); err != nil {
		t.Fatal(err)
	}
	if res, _, err := r.do(Operation{Kind: OpSet, Amount: 9}, now); err != nil || res.Credits != 9 {
		t.Fatalf("set after a void of the balance lot: %+v %v", res, err)
	}
	if rem := remaining(r.account()); rem[BalanceLotID] != 7 || rem["g"] != 2 {
		t.Fatalf("lots %v", rem)
	}
}

// TestAccountGrantsOfOneSecondAreSpentInTheirOrder: lots alike but for their IDs, granted
// in the same second, are spent (and listed) in the order they were granted.
func TestAccountGrantsOfOneSecondAreSpentInTheirOrder(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	ids := []string{"lot_f", "lot_0", "lot_9", "lot_a", "lot_1"}
	for i, id := range ids {
		_, _, _ = r.do(grantLot(id, 1, 30, time.Time{}), now.Add(time.Duration(i)*100*time.Millisecond))
	}
	var got []string
	for _, g := range r.account().Grants(now) {
		got = append(got, g.ID)
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("order %v, want %v (granted in that order)", got, ids)
	}
	_, _, _ = r.do(Operation{Kind: OpConsume, Amount: 1}, now)
	if rem := remaining(r.account()); rem["lot_f"] != 0 && len(rem) != 4 {
		t.Fatalf("the first consume spent %v, want lot_f", rem)
	}
}

// TestAccountExpiresAtIsStoredRoundedUp: a lot never expires before the time it was granted
// until (a record keeps seconds), and an expiry a record cannot hold is invalid.
func TestAccountExpiresAtIsStoredRoundedUp(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	until := now.Add(900 * time.Millisecond)
	if res, _, err := r.do(grantLot("soon", 3, 50, until), now); err != nil || res.Credits != 3 {
		t.Fatalf("grant until %v: %+v %v", until, res, err)
	}
	if a := r.account(); a.Spendable(now.Add(500*time.Millisecond)) != 3 || !a.Lots[0].ExpiresAt.Equal(now.Add(time.Second)) {
		t.Fatalf("stored expiry %v, spendable %d before it", a.Lots[0].ExpiresAt, a.Spendable(now.Add(500*time.Millisecond)))
	}
	for _, bad := range []time.Time{
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.FixedZone("", -(23*3600+59*60))), // 10000-01-01 in UTC
		time.Date(9999, 12, 31, 23, 59, 59, 1, time.UTC),                             // rounds up into 10000
	} {
		if _, _, err := r.do(grantLot("far", 1, 50, bad), now); !errors.Is(err, ErrInvalidOperation) {
			t.Errorf("a grant until %v: %v, want ErrInvalidOperation", bad, err)
		}
	}
	if _, _, err := r.do(grantLot("last", 1, 50, time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)), now); err != nil {
		t.Errorf("a grant until the last second a record holds: %v", err)
	}
}

// TestAccountHeldLotExpiryRemovesNothingTwice: a lot whose credits are all held when it
// expires has nothing to remove then; its hold's release removes them, once.
func TestAccountHeldLotExpiryRemovesNothingTwice(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	_, _, _ = r.do(grantLot("p", 2, 50, now.Add(time.Minute)), now)
	hold := reserve("h", 2)
	hold.TTL = time.Hour
	_, _, _ = r.do(hold, now)
	if next, n := r.account().NextLotExpiry(); !next.IsZero() || n != 0 {
		t.Fatalf("next lot expiry %v of %d: nothing is left to expire", next, n)
	}
	if res, _, err := r.do(Operation{Kind: OpRelease, ReservationID: "h"}, now.Add(2*time.Minute)); err != nil || res.Credits != 0 {
		t.Fatalf("release after the lot expired: %+v %v", res, err)
	}
	var kinds []string
	for _, e := range r.account().History() {
		kinds = append(kinds, fmt.Sprintf("%s %d", e.Kind, e.Credits))
	}
	if fmt.Sprint(kinds) != "[expire 2 release 2 reserve 2 grant 2]" {
		t.Fatalf("history %v", kinds)
	}
}

// TestAccountHeldBalanceLotIsListed: a balance lot whose credits are all held (stored
// without spec.lots) is listed, with nothing remaining.
func TestAccountHeldBalanceLotIsListed(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 2)
	_, _, _ = r.do(reserve("h", 2), now)
	g := r.account().Grants(now)
	if r.obj.Spec.Lots != nil || len(g) != 1 || g[0].ID != BalanceLotID || g[0].Remaining != 0 || g[0].Held != 2 {
		t.Fatalf("grants %+v (stored lots %v)", g, r.obj.Spec.Lots)
	}
	if res, _, err := r.do(Operation{Kind: OpRelease, ReservationID: "h"}, now); err != nil || res.Credits != 2 {
		t.Fatalf("release: %+v %v", res, err)
	}
}
