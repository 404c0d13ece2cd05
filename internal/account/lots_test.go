package account

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func prio(p int32) *int32 { return &p }

// grantLot is a grant making lot id with the given priority and expiry (zero: never).
func grantLot(id string, n int64, priority int32, expires time.Time) Operation {
	return Operation{Kind: OpGrant, Amount: n, Terms: LotTerms{ID: id, Priority: prio(priority), ExpiresAt: expires}}
}

// remaining is what is left of each open lot, by ID (closed lots, spent ones among them,
// have nothing left).
func remaining(a Account) map[string]int64 {
	out := map[string]int64{}
	for _, l := range a.Lots {
		if l.Closed == "" {
			out[l.ID] = l.Remaining
		}
	}
	return out
}

func TestAccountLotsAreSpentInOrder(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 5) // the balance lot: priority 50, never expires, the oldest
	for _, op := range []Operation{
		grantLot("late", 3, 50, now.Add(48*time.Hour)),
		grantLot("soon", 3, 50, now.Add(time.Hour)),
		grantLot("promo", 2, 10, time.Time{}),
		grantLot("never", 4, 50, time.Time{}),
	} {
		if _, _, err := r.do(op, now); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.available(); got != 17 {
		t.Fatalf("available %d, want 17", got)
	}
	order := []string{}
	for _, g := range r.account().Grants(now) {
		order = append(order, g.ID)
	}
	if fmt.Sprint(order) != "[promo soon late balance never]" {
		t.Fatalf("spending order %v: lowest priority, then soonest expiry, never-expiring last, then oldest", order)
	}
	for _, step := range []struct {
		consume int64
		want    map[string]int64
	}{
		{1, map[string]int64{"promo": 1, "soon": 3, "late": 3, BalanceLotID: 5, "never": 4}},
		{3, map[string]int64{"soon": 1, "late": 3, BalanceLotID: 5, "never": 4}}, // promo spent: closed
		{5, map[string]int64{BalanceLotID: 4, "never": 4}},
	} {
		if _, _, err := r.do(Operation{Kind: OpConsume, Amount: step.consume}, now); err != nil {
			t.Fatal(err)
		}
		if got := remaining(r.account()); fmt.Sprint(got) != fmt.Sprint(step.want) {
			t.Fatalf("after consuming %d: %v, want %v", step.consume, got, step.want)
		}
	}
}

// TestAccountHoldsReturnCreditsToTheirLots: a hold takes lot by lot; a release returns each
// part to its lot; a capture spends in lot order and returns the rest.
func TestAccountHoldsReturnCreditsToTheirLots(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	for _, op := range []Operation{grantLot("a", 2, 10, time.Time{}), grantLot("b", 3, 20, time.Time{}), grantLot("c", 4, 30, time.Time{})} {
		if _, _, err := r.do(op, now); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := r.do(reserve("h1", 4), now); err != nil {
		t.Fatal(err)
	}
	if got := remaining(r.account()); fmt.Sprint(got) != fmt.Sprint(map[string]int64{"a": 0, "b": 1, "c": 4}) {
		t.Fatalf("after holding 4: %v", got)
	}
	if h := r.obj.Spec.Reservations[0].From; len(h) != 2 || h[0].Lot != "a" || h[0].Credits != 2 || h[1].Lot != "b" || h[1].Credits != 2 {
		t.Fatalf("the hold records %+v", h)
	}
	if _, _, err := r.do(Operation{Kind: OpRelease, ReservationID: "h1"}, now); err != nil {
		t.Fatal(err)
	}
	if got := remaining(r.account()); fmt.Sprint(got) != fmt.Sprint(map[string]int64{"a": 2, "b": 3, "c": 4}) {
		t.Fatalf("after the release: %v", got)
	}
	if _, _, err := r.do(reserve("h2", 4), now); err != nil {
		t.Fatal(err)
	}
	if res, _, err := r.do(Operation{Kind: OpCapture, ReservationID: "h2", Amount: 3}, now); err != nil || res.Credits != 6 {
		t.Fatalf("capture 3 of 4: %+v %v", res, err)
	}
	if got := remaining(r.account()); fmt.Sprint(got) != fmt.Sprint(map[string]int64{"b": 2, "c": 4}) {
		t.Fatalf("after capturing 3 of a hold of a:2 b:2: %v (a spent, b's other credit back)", got)
	}
}

// TestAccountLotsExpire: at its time what is left of a lot is removed, by the controller's
// expiry or by the next write; credits a hold took from it finish as the hold does (a
// capture spends them, a release removes them).
func TestAccountLotsExpire(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 1)
	if _, _, err := r.do(grantLot("promo", 5, 10, now.Add(time.Hour)), now); err != nil {
		t.Fatal(err)
	}
	hold := reserve("h", 3)
	hold.TTL = 2 * time.Hour
	if _, _, err := r.do(hold, now); err != nil {
		t.Fatal(err)
	}
	if next, n := r.account().NextLotExpiry(); !next.Equal(now.Add(time.Hour)) || n != 2 {
		t.Fatalf("next expiry %v of %d", next, n)
	}
	later := now.Add(time.Hour)
	if a := r.account(); a.Spendable(later) != 1 || a.Available != 3 {
		t.Fatalf("at its expiry: spendable %d of %d available", a.Spendable(later), a.Available)
	}
	if res, changed, err := r.do(Operation{Kind: OpExpire}, later); err != nil || !changed || res.Credits != 1 {
		t.Fatalf("the controller's expiry: %+v %v %v", res, changed, err)
	}
	if _, changed, _ := r.do(Operation{Kind: OpExpire}, later); changed {
		t.Fatal("a second expiry changed something")
	}
	h := r.account().History()
	if h[0].Kind != OpExpire || h[0].Credits != 2 || h[0].Reference != "promo" || h[0].Balance != 1 {
		t.Fatalf("history %+v", h[0])
	}
	if r.account().Changes() != nil {
		t.Fatal("a decoded account carries removals")
	}
	// The hold took 3 from promo (before the balance lot's 1? no: promo is spent first).
	if res, _, err := r.do(Operation{Kind: OpRelease, ReservationID: "h"}, later); err != nil || res.Credits != 1 {
		t.Fatalf("release of credits held from an expired lot: %+v %v (they are removed)", res, err)
	}
	if h := r.account().History(); h[0].Kind != OpExpire || h[0].Credits != 3 || h[1].Kind != OpRelease {
		t.Fatalf("history after the release %+v", h[:2])
	}
	// A write after a lot's time removes it in the same write, before deciding.
	r2 := newRecord(t, 0)
	_, _, _ = r2.do(grantLot("p", 5, 10, now.Add(time.Minute)), now)
	if res, _, err := r2.do(Operation{Kind: OpConsume, Amount: 1}, now.Add(time.Minute)); !errors.Is(err, ErrInsufficientCredits) || res.Credits != 0 {
		t.Fatalf("consume after the only lot expired: %+v %v", res, err)
	}
	_, _, _ = r2.do(Operation{Kind: OpGrant, Amount: 2}, now.Add(time.Minute))
	if h := r2.account().History(); h[0].Kind != OpGrant || h[1].Kind != OpExpire || h[1].Credits != 5 || r2.available() != 2 {
		t.Fatalf("the grant after the expiry: %+v, available %d", h[:2], r2.available())
	}
}

func TestAccountVoid(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	_, _, _ = r.do(grantLot("g", 5, 50, time.Time{}), now)
	_, _, _ = r.do(Operation{Kind: OpConsume, Amount: 2}, now)
	void := Operation{Kind: OpVoid, Terms: LotTerms{ID: "g"}, IdempotencyKey: "void-1"}
	if res, changed, err := r.do(void, now); err != nil || !changed || res.Credits != 0 {
		t.Fatalf("void: %+v %v %v", res, changed, err)
	}
	if res, _, err := r.do(void, now); err != nil || !res.Replayed {
		t.Fatalf("void replayed: %+v %v", res, err)
	}
	if _, _, err := r.do(Operation{Kind: OpVoid, Terms: LotTerms{ID: "g"}}, now); !errors.Is(err, ErrLotClosed) {
		t.Fatalf("void twice: %v, want ErrLotClosed", err)
	}
	if _, _, err := r.do(Operation{Kind: OpVoid, Terms: LotTerms{ID: "nope"}}, now); !errors.Is(err, ErrLotNotFound) {
		t.Fatalf("void of an unknown lot: %v, want ErrLotNotFound", err)
	}
	if h := r.account().History(); h[0].Kind != OpVoid || h[0].Credits != 3 || h[0].Reference != "g" {
		t.Fatalf("history %+v", h[0])
	}
}

// TestAccountSetCorrectsTheBalance: a set above the balance adds to the balance lot; below
// it takes in spending order, so that the other lots keep their terms.
func TestAccountSetCorrectsTheBalance(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	_, _, _ = r.do(grantLot("promo", 5, 10, now.Add(time.Hour)), now)
	for _, step := range []struct {
		set  int64
		want map[string]int64
	}{
		{8, map[string]int64{"promo": 5, BalanceLotID: 3}},
		{4, map[string]int64{BalanceLotID: 3, "promo": 1}},
		{3, map[string]int64{BalanceLotID: 3}},
	} {
		if _, _, err := r.do(Operation{Kind: OpSet, Amount: step.set}, now); err != nil {
			t.Fatal(err)
		}
		if got := remaining(r.account()); fmt.Sprint(got) != fmt.Sprint(step.want) {
			t.Fatalf("after a set to %d: %v, want %v", step.set, got, step.want)
		}
	}
	if lots := r.obj.Spec.Lots; len(lots) != 2 || lots[0].ID != "promo" || lots[0].Closed != lotSpent {
		t.Fatalf("the spent promotion is kept closed (a void of it is told it has nothing left): %+v", lots)
	}
	plain := newRecord(t, 0)
	for _, n := range []int64{8, 3} {
		_, _, _ = plain.do(Operation{Kind: OpSet, Amount: n}, now)
	}
	if plain.obj.Spec.Lots != nil || plain.obj.Spec.Credits != 3 {
		t.Fatalf("with only a plain balance lot, spec.lots is %v (want none: spec.credits says it)", plain.obj.Spec.Lots)
	}
}

func TestAccountLotBoundsAndKeys(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	d := r.account().ApplyAll("user_A", nil, now, r.rules)
	for i := range MaxLots {
		d = d.Account.ApplyAll("user_A", []Operation{{Kind: OpGrant, Amount: 1, Purchase: fmt.Sprint("cs_", i)}}, now, r.rules)
	}
	r.write(d.Account)
	// A paid purchase is never refused for the bound: it joins the balance lot.
	if res, _, err := r.do(Operation{Kind: OpGrant, Amount: 1, Purchase: "cs_over", Payment: "pi_over"}, now); err != nil || res.LotID != BalanceLotID || r.available() != MaxLots+1 {
		t.Fatalf("the 101st purchase: %+v %v, balance %d; want it credited to the balance lot", res, err, r.available())
	}
	if h := r.account().History(); !slices.ContainsFunc(h, func(e Transaction) bool { return e.Kind == KindPurchase && e.Reference == "cs_over" }) {
		t.Fatalf("history %+v: no purchase naming the 101st session", h)
	}
	res, _, err := r.do(Operation{Kind: OpGrant, Amount: 1, Terms: LotTerms{Source: SourceStripe}}, now)
	if !errors.Is(err, ErrTooManyLots) {
		t.Fatalf("a plain grant with only referenced lots to join: %+v %v", res, err)
	}
	r2 := newRecord(t, 0)
	for i := range MaxLots + 5 {
		if res, _, err := r2.do(Operation{Kind: OpGrant, Amount: 1, Terms: LotTerms{ID: fmt.Sprint("l", i)}}, now); err != nil {
			t.Fatalf("grant %d: %+v %v (plain grants join a lot at the bound)", i, res, err)
		}
	}
	if a := r2.account(); len(a.Lots) != MaxLots || a.Available != MaxLots+5 {
		t.Fatalf("%d lots holding %d", len(a.Lots), a.Available)
	}
	keyed := Operation{Kind: OpGrant, Amount: 3, IdempotencyKey: "k", Terms: LotTerms{ID: "x1", Reason: "promo"}}
	r3 := newRecord(t, 0)
	first, _, err := r3.do(keyed, now)
	if err != nil || first.LotID != "x1" {
		t.Fatalf("keyed grant: %+v %v", first, err)
	}
	retry := keyed
	retry.Terms.ID = "x2" // the store names each request's lot anew: the key wins
	if again, _, err := r3.do(retry, now); err != nil || !again.Replayed || again.LotID != "x1" {
		t.Fatalf("keyed grant retried: %+v %v", again, err)
	}
	other := keyed
	other.Terms.Reason = "another"
	if _, _, err := r3.do(other, now); !errors.Is(err, ErrIdempotencyKeyReused) {
		t.Fatalf("the same key with other terms: %v", err)
	}
	// The bound counts characters, as the CRD's maxLength does.
	if _, _, err := r3.do(Operation{Kind: OpGrant, Amount: 1, IdempotencyKey: "k-accented", Terms: LotTerms{Reason: strings.Repeat("é", MaxReasonLength)}}, now); err != nil {
		t.Fatalf("a reason of %d two-byte characters: %v", MaxReasonLength, err)
	}
	for _, bad := range []Operation{
		{Kind: OpGrant, Amount: 1, Terms: LotTerms{Priority: prio(101)}},
		{Kind: OpGrant, Amount: 1, Terms: LotTerms{Priority: prio(-1)}},
		{Kind: OpGrant, Amount: 1, Terms: LotTerms{ExpiresAt: now}},
		{Kind: OpGrant, Amount: 1, Terms: LotTerms{Reason: strings.Repeat("r", MaxReasonLength+1)}},
		{Kind: OpGrant, Amount: 1, Terms: LotTerms{Reason: "line\nbreak"}},
		{Kind: OpGrant, Amount: 1, Terms: LotTerms{Reason: "\xff not UTF-8"}},
		{Kind: OpConsume, Amount: 1, Terms: LotTerms{Reason: "x"}},
		{Kind: OpVoid},
	} {
		if _, _, err := r3.do(bad, now); !errors.Is(err, ErrInvalidOperation) {
			t.Errorf("%+v: %v, want ErrInvalidOperation", bad, err)
		}
	}
}

// TestAccountLotsAddUpToTheBalance: a stored record whose lots do not add up to its
// balance (edited by hand past the CRD's rule) is never served or changed.
func TestAccountLotsAddUpToTheBalance(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	_, _, _ = r.do(grantLot("g", 5, 50, time.Time{}), now)
	r.obj.Spec.Credits = 9
	if _, err := Decode(r.obj); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("lots holding 5 under a balance of 9: %v, want ErrUntrusted", err)
	}
	r.obj.Spec.Lots = nil // an edit that drops the lots: the whole balance becomes one lot
	if a, err := Decode(r.obj); err != nil || len(a.Lots) != 1 || a.Lots[0].ID != BalanceLotID || a.Lots[0].Remaining != 9 {
		t.Fatalf("a balance without lots: %+v %v", a.Lots, err)
	}
}

// TestAccountCreditGrantLots: what the CreditGrant controller relies on. A lot may name a
// CreditGrant, whose name may hold dots; a grant's key is answered before its expiry is
// judged, so that a CreditGrant applied just before its expiresAt, whose status write was
// lost, is told its lot rather than that it expired.
func TestAccountCreditGrantLots(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	grant := Operation{Kind: OpGrant, Amount: 7, IdempotencyKey: "creditgrant:welcome.2026-q1",
		Terms: LotTerms{ID: "lot_a", ExpiresAt: now.Add(time.Minute), Source: SourceGitOps, Reference: "welcome.2026-q1"}}
	if res, _, err := r.do(grant, now); err != nil || res.LotID != "lot_a" {
		t.Fatalf("a grant naming a dotted CreditGrant: %+v %v", res, err)
	}
	if lots := r.account().Lots; len(lots) != 1 || lots[0].Reference != "welcome.2026-q1" || lots[0].Source != SourceGitOps {
		t.Fatalf("stored lots %+v", lots)
	}
	later := grant
	later.Terms.ID = "lot_b"
	if res, _, err := r.do(later, now.Add(2*time.Minute)); err != nil || !res.Replayed || res.LotID != "lot_a" {
		t.Fatalf("the same grant after its expiry: %+v %v, want the replay of lot_a", res, err)
	}
	for _, ref := range []string{"a,b", "a;b", "a b", string(make([]byte, 256))} {
		bad := Operation{Kind: OpGrant, Amount: 1, Terms: LotTerms{Source: SourceGitOps, Reference: ref}}
		if _, _, err := r.do(bad, now); !errors.Is(err, ErrInvalidOperation) {
			t.Errorf("reference %q: %v, want ErrInvalidOperation", ref, err)
		}
	}
	if ValidReference("welcome.2026-q1") {
		t.Error("a Stripe reference (the history's) accepts a dot")
	}
}
