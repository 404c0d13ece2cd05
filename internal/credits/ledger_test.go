package credits

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// user is a user's object in memory: decisions are applied to it as the store's write would.
type user struct {
	credits int64
	holds   []creditsv1alpha1.Reservation
	ann     map[string]string
	// retention overrides the grant-key retention (default 30 days).
	retention time.Duration
}

func (u *user) do(op Operation, now time.Time) (decision, error) {
	retention := u.retention
	if retention == 0 {
		retention = DefaultSettings().GrantKeyRetention
	}
	d, err := decide(u.credits, u.holds, u.ann, op, now, retention)
	if err == nil && !d.noop {
		u.credits = d.credits
		if d.holdsChanged {
			u.holds = d.reservations
		}
		if u.ann == nil {
			u.ann = map[string]string{}
		}
		for k, v := range d.annotations {
			u.ann[k] = v
		}
	}
	return d, err
}

func TestDecideArithmetic(t *testing.T) {
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
		u := &user{credits: c.balance}
		d, err := u.do(c.op, now)
		if !errors.Is(err, c.err) || u.credits != c.want || (err == nil && (d.noop || d.result.Credits != c.want)) {
			t.Errorf("%s: got credits=%d noop=%v result=%d err=%v; want %d %v", c.name, u.credits, d.noop, d.result.Credits, err, c.want, c.err)
		}
	}
}

func TestDecideIdempotency(t *testing.T) {
	now := time.Now()
	grant := Operation{Kind: OpGrant, Amount: 10, IdempotencyKey: "cs_test_1"}
	u := &user{credits: 5}
	if d, err := u.do(grant, now); err != nil || u.credits != 15 || d.annotations[AppliedGrantsAnnotation] == "" || d.annotations[AppliedRequestsAnnotation] != "" {
		t.Fatalf("first grant: %+v %v", d, err)
	}
	again, err := u.do(grant, now.Add(time.Minute))
	if err != nil || !again.noop || !again.result.Replayed || again.result.Credits != 15 {
		t.Fatalf("replay: %+v %v", again, err)
	}
	u.credits = 3 // the balance moved on: a replay still answers what the first application did
	if later, err := u.do(grant, now.Add(time.Hour)); err != nil || later.result.Credits != 15 || u.credits != 3 {
		t.Fatalf("replay after other changes: %+v %v", later, err)
	}
	for _, other := range []Operation{
		{Kind: OpGrant, Amount: 11, IdempotencyKey: "cs_test_1"},
		{Kind: OpConsume, Amount: 10, IdempotencyKey: "cs_test_1"},
	} {
		if _, err := u.do(other, now); !errors.Is(err, ErrIdempotencyKeyReused) {
			t.Fatalf("same key, other request %+v: %v", other, err)
		}
	}
	if _, err := u.do(Operation{Kind: OpConsume, Amount: 1, IdempotencyKey: "gen-1"}, now); err != nil || u.ann[AppliedRequestsAnnotation] == "" {
		t.Fatalf("keyed consume: %v", err)
	}
	if _, err := u.do(Operation{Kind: OpGrant, Amount: 1, IdempotencyKey: "gen-1"}, now); !errors.Is(err, ErrIdempotencyKeyReused) {
		t.Fatalf("a consume's key reused for a grant: %v", err)
	}
	u.credits = 15
	if d, err := u.do(Operation{Kind: OpSet, Amount: 15, IdempotencyKey: "s1"}, now); err != nil || d.noop {
		t.Fatalf("keyed set to the same value must be written: %+v %v", d, err)
	}
}

func TestKeyRetention(t *testing.T) {
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
		u := &user{retention: c.retention}
		_, _ = u.do(grant, now)
		d, err := u.do(grant, now.Add(c.after))
		if err != nil || d.result.Replayed != c.replayed {
			t.Errorf("%s: replayed=%v err=%v, want replayed=%v", c.name, d.result.Replayed, err, c.replayed)
		}
	}
	consume := Operation{Kind: OpConsume, Amount: 1, IdempotencyKey: "gen-1"}
	u := &user{credits: 10}
	_, _ = u.do(consume, now)
	if d, _ := u.do(consume, now.Add(RequestKeysMaxAge-time.Minute)); !d.result.Replayed {
		t.Error("consume key forgotten within its window")
	}
	if d, _ := u.do(consume, now.Add(RequestKeysMaxAge+time.Minute)); d.result.Replayed {
		t.Error("consume key kept past its window")
	}
}

func TestOtherKeysNeverEvictAGrantKey(t *testing.T) {
	now := time.Now()
	grant := Operation{Kind: OpGrant, Amount: 1000, IdempotencyKey: "cs_live_abc"}
	u := &user{}
	_, _ = u.do(grant, now)
	for i := range 3 * RequestKeysMaxEntries {
		op := []OpKind{OpConsume, OpSet}[i%2]
		if _, err := u.do(Operation{Kind: op, Amount: 1, IdempotencyKey: fmt.Sprint("k", i)}, now); err != nil {
			t.Fatal(err)
		}
	}
	if again, _ := u.do(grant, now); !again.result.Replayed || again.result.Credits != 1000 {
		t.Fatalf("grant key evicted by other keyed traffic: %+v", again)
	}
}

func TestLedgersAreBoundedAndStoreNoRawKeys(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		kind       OpKind
		max        int
		annotation string
	}{
		{OpConsume, RequestKeysMaxEntries, AppliedRequestsAnnotation},
		{OpGrant, GrantKeysMaxEntries, AppliedGrantsAnnotation},
	} {
		u := &user{credits: 1 << 40}
		for i := range c.max + 20 {
			if _, err := u.do(Operation{Kind: c.kind, Amount: 1, IdempotencyKey: fmt.Sprintf("checkout-session-%d", i)}, now); err != nil {
				t.Fatal(err)
			}
		}
		var entries []appliedRequest
		if err := json.Unmarshal([]byte(u.ann[c.annotation]), &entries); err != nil {
			t.Fatal(err)
		}
		if len(entries) != c.max {
			t.Fatalf("%s ledger holds %d entries, bound is %d", c.kind, len(entries), c.max)
		}
		if size := len(u.ann[c.annotation]); size > 100*c.max {
			t.Fatalf("%s ledger annotation is %d bytes", c.kind, size)
		}
		if entries[len(entries)-1].Key != hashKey(fmt.Sprintf("checkout-session-%d", c.max+19)) {
			t.Fatal("the newest key was not kept")
		}
		for _, e := range entries {
			if len(e.Key) != 32 {
				t.Fatalf("stored key %q is not a hash", e.Key)
			}
		}
	}
	u := &user{ann: map[string]string{AppliedGrantsAnnotation: "{not json"}}
	if _, err := u.do(Operation{Kind: OpGrant, Amount: 1, IdempotencyKey: "k"}, now); err != nil || u.credits != 1 {
		t.Fatalf("a damaged ledger must not block operations: %v", err)
	}
}
