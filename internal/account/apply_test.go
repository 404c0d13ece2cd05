package account

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestAccountApplyArithmetic(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name    string
		balance int64
		op      Operation
		want    int64
		err     error
	}{
		{"set", 5, Operation{Kind: OpSet, Amount: 9}, 9, nil},
		{"set same (still written: the write confirms the balance)", 5, Operation{Kind: OpSet, Amount: 5}, 5, nil},
		{"set zero", 5, Operation{Kind: OpSet, Amount: 0}, 0, nil},
		{"consume", 5, Operation{Kind: OpConsume, Amount: 2}, 3, nil},
		{"consume all", 5, Operation{Kind: OpConsume, Amount: 5}, 0, nil},
		{"consume too much", 5, Operation{Kind: OpConsume, Amount: 6}, 5, ErrInsufficientCredits},
		{"consume from zero", 0, Operation{Kind: OpConsume, Amount: 1}, 0, ErrInsufficientCredits},
		{"grant", 5, Operation{Kind: OpGrant, Amount: 10}, 15, nil},
		{"grant to max", MaxBalance - 1, Operation{Kind: OpGrant, Amount: 1}, MaxBalance, nil},
		{"grant past max", MaxBalance, Operation{Kind: OpGrant, Amount: 1}, MaxBalance, ErrBalanceOverflow},
		{"grant huge", 1, Operation{Kind: OpGrant, Amount: MaxBalance}, 1, ErrBalanceOverflow},
		{"consume zero", 5, Operation{Kind: OpConsume, Amount: 0}, 5, ErrInvalidOperation},
		{"grant negative", 5, Operation{Kind: OpGrant, Amount: -1}, 5, ErrInvalidOperation},
		{"unknown kind", 5, Operation{Kind: "steal", Amount: 1}, 5, ErrInvalidOperation},
	}
	for _, c := range cases {
		r := newRecord(t, c.balance)
		res, changed, err := r.do(c.op, now)
		if !errors.Is(err, c.err) || r.available() != c.want || res.Credits != c.want || changed != (c.err == nil) {
			t.Errorf("%s: got credits=%d changed=%v result=%d err=%v; want %d %v", c.name, r.available(), changed, res.Credits, err, c.want, c.err)
		}
	}
}

// TestAccountHeldCreditsCanAlwaysBeReturned (attack: a hold that can never be returned):
// the available and the held credits together never exceed the largest balance, so a
// grant or a set that would make them is refused, and every hold can be released.
func TestAccountHeldCreditsCanAlwaysBeReturned(t *testing.T) {
	now := time.Now()
	r := newRecord(t, MaxBalance)
	if _, _, err := r.do(reserve("h", 10), now); err != nil {
		t.Fatal(err)
	}
	for _, op := range []Operation{
		{Kind: OpGrant, Amount: 10, IdempotencyKey: "g1"},
		{Kind: OpGrant, Amount: 1},
		{Kind: OpSet, Amount: MaxBalance},
		{Kind: OpSet, Amount: MaxBalance - 9},
	} {
		if _, _, err := r.do(op, now); !errors.Is(err, ErrBalanceOverflow) || r.available() != MaxBalance-10 {
			t.Errorf("%+v with 10 held: %v, available %d; want ErrBalanceOverflow and nothing changed", op, err, r.available())
		}
	}
	if _, _, err := r.do(Operation{Kind: OpSet, Amount: MaxBalance - 10}, now); err != nil {
		t.Errorf("a set that keeps the hold returnable: %v", err)
	}
	if res, _, err := r.do(Operation{Kind: OpRelease, ReservationID: "h"}, now); err != nil || res.Credits != MaxBalance {
		t.Errorf("release: %+v %v, want %d", res, err, int64(MaxBalance))
	}
	// A record stored past the bound (written by hand) is never served or changed.
	r.obj.Spec.Credits = MaxBalance
	r.obj.Spec.Reservations = reservationsOf(Hold{ID: "x", Credits: 1, ExpiresAt: now.Add(time.Minute)})
	if _, err := Decode(r.obj); !errors.Is(err, ErrUntrusted) {
		t.Errorf("decoding %d available and 1 held: %v, want ErrUntrusted", int64(MaxBalance), err)
	}
}

func TestAccountRefusesWhatBreaksAnInvariantOnDecode(t *testing.T) {
	now := time.Now()
	for name, edit := range map[string]func(r *record){
		"negative balance": func(r *record) { r.obj.Spec.Credits = -1 },
		"a repeated hold": func(r *record) {
			r.obj.Spec.Reservations = reservationsOf(Hold{ID: "a", Credits: 1, ExpiresAt: now}, Hold{ID: "a", Credits: 2, ExpiresAt: now})
		},
		"a damaged request ledger": func(r *record) { r.obj.Annotations = map[string]string{AppliedRequestsAnnotation: "{not json"} },
		"a damaged grant ledger":   func(r *record) { r.obj.Annotations = map[string]string{AppliedGrantsAnnotation: "[{"} },
		"a ledger over its bound": func(r *record) {
			r.obj.Annotations = map[string]string{AppliedRequestsAnnotation: "[" + string(make([]byte, 30<<10)) + "]"}
		},
	} {
		r := newRecord(t, 5)
		edit(r)
		if _, err := Decode(r.obj); !errors.Is(err, ErrUntrusted) {
			t.Errorf("%s: %v, want ErrUntrusted", name, err)
		}
	}
}

func TestAccountApplyIdempotency(t *testing.T) {
	now := time.Now()
	grant := Operation{Kind: OpGrant, Amount: 10, IdempotencyKey: "cs_test_1"}
	r := newRecord(t, 5)
	if _, _, err := r.do(grant, now); err != nil || r.available() != 15 || r.annotation(AppliedGrantsAnnotation) == "" || r.annotation(AppliedRequestsAnnotation) != "" {
		t.Fatalf("first grant: %v %v", err, r.obj.Annotations)
	}
	again, changed, err := r.do(grant, now.Add(time.Minute))
	if err != nil || changed || !again.Replayed || again.Credits != 15 {
		t.Fatalf("replay: %+v %v %v", again, changed, err)
	}
	if _, _, err := r.do(Operation{Kind: OpConsume, Amount: 12}, now); err != nil { // the balance moved on
		t.Fatal(err)
	}
	if later, _, err := r.do(grant, now.Add(time.Hour)); err != nil || later.Credits != 15 || r.available() != 3 {
		t.Fatalf("replay after other changes: %+v %v", later, err)
	}
	for _, other := range []Operation{
		{Kind: OpGrant, Amount: 11, IdempotencyKey: "cs_test_1"},
		{Kind: OpConsume, Amount: 10, IdempotencyKey: "cs_test_1"},
	} {
		if _, _, err := r.do(other, now); !errors.Is(err, ErrIdempotencyKeyReused) {
			t.Fatalf("same key, other request %+v: %v", other, err)
		}
	}
	if _, _, err := r.do(Operation{Kind: OpConsume, Amount: 1, IdempotencyKey: "gen-1"}, now); err != nil || r.annotation(AppliedRequestsAnnotation) == "" {
		t.Fatalf("keyed consume: %v", err)
	}
	if _, _, err := r.do(Operation{Kind: OpGrant, Amount: 1, IdempotencyKey: "gen-1"}, now); !errors.Is(err, ErrIdempotencyKeyReused) {
		t.Fatalf("a consume's key reused for a grant: %v", err)
	}
	if _, _, err := r.do(Operation{Kind: OpSet, Amount: 15}, now); err != nil {
		t.Fatal(err)
	}
	if _, changed, err := r.do(Operation{Kind: OpSet, Amount: 15, IdempotencyKey: "s1"}, now); err != nil || !changed {
		t.Fatalf("keyed set to the same value must be written: %v %v", changed, err)
	}
}

func TestAccountKeyRetention(t *testing.T) {
	now := time.Now()
	grant := Operation{Kind: OpGrant, Amount: 10, IdempotencyKey: "cs_test_1"}
	for _, c := range []struct {
		name      string
		after     time.Duration
		retention time.Duration
		replayed  bool
	}{
		{"grant key after 29 days", 29 * 24 * time.Hour, 0, true},
		{"grant key after 31 days", 31 * 24 * time.Hour, 0, false},
		{"grant key after 2h with a 1h retention", 2 * time.Hour, time.Hour, false},
	} {
		r := newRecord(t, 0)
		if c.retention > 0 {
			r.rules.GrantKeyRetention = c.retention
		}
		_, _, _ = r.do(grant, now)
		res, _, err := r.do(grant, now.Add(c.after))
		if err != nil || res.Replayed != c.replayed {
			t.Errorf("%s: replayed=%v err=%v, want replayed=%v", c.name, res.Replayed, err, c.replayed)
		}
	}
	consume := Operation{Kind: OpConsume, Amount: 1, IdempotencyKey: "gen-1"}
	r := newRecord(t, 10)
	_, _, _ = r.do(consume, now)
	if res, _, _ := r.do(consume, now.Add(RequestKeysMaxAge-time.Minute)); !res.Replayed {
		t.Error("consume key forgotten within its window")
	}
	if res, _, _ := r.do(consume, now.Add(RequestKeysMaxAge+time.Minute)); res.Replayed {
		t.Error("consume key kept past its window")
	}
}

func TestAccountOtherKeysNeverEvictAGrantKey(t *testing.T) {
	now := time.Now()
	grant := Operation{Kind: OpGrant, Amount: 1000, IdempotencyKey: "cs_live_abc"}
	r := newRecord(t, 0)
	r.cache = true // as the store decides: on the cache's form, the whole record when needed
	_, _, _ = r.do(grant, now)
	for i := range 3 * RequestKeysMaxEntries {
		op := []OpKind{OpConsume, OpSet}[i%2]
		if _, _, err := r.do(Operation{Kind: op, Amount: 1, IdempotencyKey: fmt.Sprint("k", i)}, now); err != nil {
			t.Fatal(err)
		}
	}
	if again, _, _ := r.do(grant, now); !again.Replayed || again.Credits != 1000 {
		t.Fatalf("grant key evicted by other keyed traffic: %+v", again)
	}
}

func TestAccountLedgersAreBoundedAndStoreNoRawKeys(t *testing.T) {
	now := time.Now()
	zero := int32(0)
	first := LotTerms{Priority: &zero}
	for _, c := range []struct {
		kind       OpKind
		max        int
		annotation string
	}{
		{OpConsume, RequestKeysMaxEntries, AppliedRequestsAnnotation},
		{OpGrant, GrantKeysMaxEntries, AppliedGrantsAnnotation},
	} {
		r := newRecord(t, 1<<40)
		var ops []Operation
		for i := range c.max + 20 {
			op := Operation{Kind: c.kind, Amount: 1, IdempotencyKey: fmt.Sprintf("checkout-session-%d", i)}
			if c.kind == OpGrant {
				op.Terms = first
			}
			ops = append(ops, op)
			if c.kind == OpGrant {
				ops = append(ops, Operation{Kind: OpConsume, Amount: 1}) // each grant is a lot, spent first: then it goes
			}
		}
		d := r.account().ApplyAll("user_A", ops, now, r.rules) // one batch, one write
		if len(d.Applied) != len(ops) {
			t.Fatalf("%d of %d applied: %+v", len(d.Applied), len(ops), d.Answers[len(d.Applied)])
		}
		r.write(d.Account)
		entries, ok := decodeKeys(r.annotation(c.annotation))
		if !ok {
			t.Fatalf("the %s ledger does not read: %q", c.kind, r.annotation(c.annotation))
		}
		if len(entries) != c.max {
			t.Fatalf("%s ledger holds %d entries, bound is %d", c.kind, len(entries), c.max)
		}
		if size := len(r.annotation(c.annotation)); size > partBounds[c.annotation] {
			t.Fatalf("%s ledger annotation is %d bytes", c.kind, size)
		}
		if entries[len(entries)-1].Key != hashKey(fmt.Sprintf("checkout-session-%d", c.max+19)) {
			t.Fatal("the newest key was not kept")
		}
		for _, e := range entries {
			if !validKeyHash(e.Key) || strings.Contains(r.annotation(c.annotation), "checkout-session") {
				t.Fatalf("stored key %q is not a hash", e.Key)
			}
		}
	}
}

// TestAccountEveryWriteMovesTheWriteSequence: the sequence every write tests and moves is
// its own annotation, apart from the history's count.
func TestAccountEveryWriteMovesTheWriteSequence(t *testing.T) {
	now := time.Now()
	r := newRecord(t, 10)
	for i, op := range []Operation{{Kind: OpConsume, Amount: 1}, {Kind: OpGrant, Amount: 2}, reserve("h", 1), {Kind: OpRelease, ReservationID: "h"}} {
		if _, _, err := r.do(op, now); err != nil {
			t.Fatal(err)
		}
		if got := r.annotation(WriteSeqAnnotation); got != fmt.Sprint(i+1) {
			t.Fatalf("after %d writes the write sequence is %q", i+1, got)
		}
	}
	if _, changed, _ := r.do(Operation{Kind: OpRelease, ReservationID: "h"}, now); changed || r.annotation(WriteSeqAnnotation) != "4" {
		t.Fatalf("a replay wrote: changed %v, sequence %s", changed, r.annotation(WriteSeqAnnotation))
	}
}
