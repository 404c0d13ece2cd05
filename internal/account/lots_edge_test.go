package account

// Edge cases of lots that the model test of the operator (internal/operator,
// TestLotsMatchTheModel) found, pinned here where they are decided.

import (
	"errors"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// TestAccountSetAfterTheBalanceLotWasVoided: a set above the balance after the balance lot
// was voided opens the balance lot again to hold what it adds, rather than adding credits
// to a closed lot (a record every later decision refused as untrusted, every set a 500).
func TestAccountSetAfterTheBalanceLotWasVoided(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 5)
	if _, _, err := r.do(grantLot("g", 3, 50, time.Time{}), now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.do(Operation{Kind: OpVoid, Terms: LotTerms{ID: BalanceLotID}}, now); err != nil {
		t.Fatal(err)
	}
	res, _, err := r.do(Operation{Kind: OpSet, Amount: 10}, now)
	if err != nil || res.Credits != 10 {
		t.Fatalf("set 10 after the balance lot was voided: %+v, %v", res, err)
	}
	if got := remaining(r.account()); fmt.Sprint(got) != fmt.Sprint(map[string]int64{"g": 3, BalanceLotID: 7}) {
		t.Fatalf("lots %v, want g 3 and balance 7", got)
	}
	if _, _, err := r.do(Operation{Kind: OpVoid, Terms: LotTerms{ID: BalanceLotID}}, now); err != nil {
		t.Fatalf("voiding the balance lot again: %v", err)
	}
	if got := r.available(); got != 3 {
		t.Fatalf("available %d after the second void, want 3", got)
	}
}

// TestAccountGrantReplayedAfterItsExpiry: a grant's key is looked up before its expiresAt
// is judged, so that a retry sent after the lot expired (its first answer lost) is told
// the grant applied; a new grant with a past expiresAt is refused.
func TestAccountGrantReplayedAfterItsExpiry(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	op := grantLot("", 4, 50, now.Add(10*time.Second))
	op.IdempotencyKey = "promo-1"
	first, _, err := r.do(op, now)
	if err != nil {
		t.Fatal(err)
	}
	later := now.Add(time.Minute)
	res, changed, err := r.do(op, later)
	if err != nil || changed || !res.Replayed || res.Credits != first.Credits || res.LotID != first.LotID {
		t.Fatalf("the grant again after its expiry: %+v changed %v, %v; want a replay of %+v", res, changed, err, first)
	}
	op.IdempotencyKey = "promo-2"
	if _, _, err := r.do(op, later); !errors.Is(err, ErrGrantExpired) || !errors.Is(err, ErrInvalidOperation) {
		t.Fatalf("a new grant whose expiresAt has passed: %v, want ErrGrantExpired (an invalid operation)", err)
	}
}

// TestAccountLotsOfOneSecondAreSpentOldestFirst: lots of the same terms granted within one
// second (grantedAt is stored to the second) are spent in the order they were granted,
// whatever their (random) IDs.
func TestAccountLotsOfOneSecondAreSpentOldestFirst(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	for i, id := range []string{"lot_f", "lot_a", "lot_c"} {
		if _, _, err := r.do(grantLot(id, 2, 50, time.Time{}), now.Add(time.Duration(i)*100*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	order := []string{}
	for _, g := range r.account().Grants(now) {
		order = append(order, g.ID)
	}
	if fmt.Sprint(order) != "[lot_f lot_a lot_c]" {
		t.Fatalf("spending order %v, want the order of the grants: [lot_f lot_a lot_c]", order)
	}
	if _, _, err := r.do(Operation{Kind: OpConsume, Amount: 3}, now); err != nil {
		t.Fatal(err)
	}
	if got := remaining(r.account()); fmt.Sprint(got) != fmt.Sprint(map[string]int64{"lot_a": 1, "lot_c": 2}) {
		t.Fatalf("after consuming 3: %v, want lot_f spent, lot_a 1, lot_c 2", got)
	}
}

// TestAccountBalanceLotAllHeldIsListed: a balance lot whose credits are all held by a hold
// is listed, with nothing remaining, as it is while some of it is left; it was read as no
// lot at all from a record of 0 credits without spec.lots.
func TestAccountBalanceLotAllHeldIsListed(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, held := range []int64{4, 5} {
		r := newRecord(t, 5)
		if _, _, err := r.do(reserve("rsv_1", held), now); err != nil {
			t.Fatal(err)
		}
		grants := r.account().Grants(now)
		if len(grants) != 1 || grants[0].ID != BalanceLotID || grants[0].Remaining != 5-held || grants[0].Held != held {
			t.Fatalf("5 credits, %d held: grants %+v, want the balance lot with %d left and %d held", held, grants, 5-held, held)
		}
	}
	// spec.lots removed by hand, spec.credits 0, a hold of a lot and of the balance lot.
	r := newRecord(t, 0)
	r.obj.Spec.Reservations = []creditsv1alpha1.Reservation{{ID: "rsv_1", Credits: 3, ExpiresAt: metav1.NewTime(now.Add(time.Minute)),
		From: []creditsv1alpha1.LotCredits{{Lot: "lot_g", Credits: 1}, {Lot: BalanceLotID, Credits: 2}}}}
	if grants := r.account().Grants(now); len(grants) != 1 || grants[0].ID != BalanceLotID || grants[0].Remaining != 0 || grants[0].Held != 2 {
		t.Fatalf("a hold of 2 of the balance lot, nothing left: grants %+v, want the balance lot with 2 held", grants)
	}
}

// TestAccountHeldCreditsOfARemovedLotGoWithAVoidedBalanceLot: spec.lots removed by hand
// while a hold keeps credits of a grant makes them the balance lot's; that lot voided, the
// credits the hold returns are removed with it, not given back by opening it again (found
// by TestLotsMatchTheModel).
func TestAccountHeldCreditsOfARemovedLotGoWithAVoidedBalanceLot(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	if _, _, err := r.do(Operation{Kind: OpGrant, Amount: 5, Terms: LotTerms{ID: "lot_g"}}, now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.do(reserve("rsv_1", 3), now); err != nil {
		t.Fatal(err)
	}
	r.obj.Spec.Lots, r.obj.Spec.Credits = nil, 2 // kubectl: the whole balance one lot
	if res, _, err := r.do(Operation{Kind: OpVoid, Terms: LotTerms{ID: BalanceLotID}}, now); err != nil || res.Credits != 0 {
		t.Fatalf("void of the balance lot: %+v, %v; want 0 left", res, err)
	}
	res, _, err := r.do(Operation{Kind: OpCapture, Amount: 1, ReservationID: "rsv_1"}, now)
	if err != nil || res.Credits != 0 || r.available() != 0 {
		t.Fatalf("capture 1 of 3 after the void: %+v, %v, %d available; want the 2 returned removed (0)", res, err, r.available())
	}
}
