package credits

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestDecideArithmetic(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name    string
		balance int64
		op      Operation
		want    int64
		write   bool
		err     error
	}{
		{"set", 5, Operation{Kind: OpSet, Amount: 9}, 9, true, nil},
		{"set same (still written: the write confirms the balance)", 5, Operation{Kind: OpSet, Amount: 5}, 5, true, nil},
		{"set zero", 5, Operation{Kind: OpSet, Amount: 0}, 0, true, nil},
		{"consume", 5, Operation{Kind: OpConsume, Amount: 2}, 3, true, nil},
		{"consume all", 5, Operation{Kind: OpConsume, Amount: 5}, 0, true, nil},
		{"consume too much", 5, Operation{Kind: OpConsume, Amount: 6}, 5, false, ErrInsufficientCredits},
		{"consume from zero", 0, Operation{Kind: OpConsume, Amount: 1}, 0, false, ErrInsufficientCredits},
		{"grant", 5, Operation{Kind: OpGrant, Amount: 10}, 15, true, nil},
		{"grant to max", MaxBalance - 1, Operation{Kind: OpGrant, Amount: 1}, MaxBalance, true, nil},
		{"grant past max", MaxBalance, Operation{Kind: OpGrant, Amount: 1}, MaxBalance, false, ErrBalanceOverflow},
		{"grant huge", 1, Operation{Kind: OpGrant, Amount: MaxBalance}, 1, false, ErrBalanceOverflow},
		{"consume zero", 5, Operation{Kind: OpConsume, Amount: 0}, 0, false, ErrInvalidOperation},
		{"grant negative", 5, Operation{Kind: OpGrant, Amount: -1}, 0, false, ErrInvalidOperation},
		{"unknown kind", 5, Operation{Kind: "steal", Amount: 1}, 0, false, ErrInvalidOperation},
	}
	for _, c := range cases {
		d, err := decide(c.balance, ledgers{}, c.op, now, DefaultGrantKeyRetention)
		if !errors.Is(err, c.err) || d.result.Credits != c.want || d.write != c.write {
			t.Errorf("%s: got credits=%d write=%v err=%v; want %d %v %v", c.name, d.result.Credits, d.write, err, c.want, c.write, c.err)
		}
		if err == nil && d.write && d.credits != c.want {
			t.Errorf("%s: new balance %d, result %d", c.name, d.credits, c.want)
		}
	}
}

func TestDecideIdempotency(t *testing.T) {
	now := time.Now()
	grant := Operation{Kind: OpGrant, Amount: 10, IdempotencyKey: "cs_test_1"}
	first, err := decide(5, ledgers{}, grant, now, DefaultGrantKeyRetention)
	if err != nil || !first.write || first.credits != 15 || first.ledgers.grants == "" || first.ledgers.requests != "" {
		t.Fatalf("first grant: %+v %v", first, err)
	}
	// The same request again, against the balance and ledger the first one wrote.
	again, err := decide(15, first.ledgers, grant, now.Add(time.Minute), DefaultGrantKeyRetention)
	if err != nil || again.write || !again.result.Replayed || again.result.Credits != 15 {
		t.Fatalf("replay: %+v %v", again, err)
	}
	// Even after the balance moved on, a replay answers what the first application answered.
	later, err := decide(3, first.ledgers, grant, now.Add(time.Hour), DefaultGrantKeyRetention)
	if err != nil || later.write || later.result.Credits != 15 {
		t.Fatalf("replay after other changes: %+v %v", later, err)
	}
	// The same key with another request is a conflict, not a replay, whichever ledger holds it.
	other := grant
	other.Amount = 11
	if _, err := decide(15, first.ledgers, other, now, DefaultGrantKeyRetention); !errors.Is(err, ErrIdempotencyKeyReused) {
		t.Fatalf("same key, different amount: %v", err)
	}
	other = grant
	other.Kind = OpConsume
	if _, err := decide(15, first.ledgers, other, now, DefaultGrantKeyRetention); !errors.Is(err, ErrIdempotencyKeyReused) {
		t.Fatalf("same key, different kind: %v", err)
	}
	consume := Operation{Kind: OpConsume, Amount: 1, IdempotencyKey: "gen-1"}
	c, err := decide(15, ledgers{}, consume, now, DefaultGrantKeyRetention)
	if err != nil || c.ledgers.requests == "" || c.ledgers.grants != "" {
		t.Fatalf("keyed consume: %+v %v", c, err)
	}
	asGrant := Operation{Kind: OpGrant, Amount: 1, IdempotencyKey: "gen-1"}
	if _, err := decide(14, c.ledgers, asGrant, now, DefaultGrantKeyRetention); !errors.Is(err, ErrIdempotencyKeyReused) {
		t.Fatalf("a consume's key reused for a grant: %v", err)
	}
	// A set with a key to the balance it already has still records the key.
	set, err := decide(15, ledgers{}, Operation{Kind: OpSet, Amount: 15, IdempotencyKey: "s1"}, now, DefaultGrantKeyRetention)
	if err != nil || !set.write || set.ledgers.requests == "" {
		t.Fatalf("keyed set to the same value: %+v %v", set, err)
	}
}

func TestKeyRetention(t *testing.T) {
	now := time.Now()
	grant := Operation{Kind: OpGrant, Amount: 10, IdempotencyKey: "cs_test_1"}
	first, _ := decide(0, ledgers{}, grant, now, DefaultGrantKeyRetention)
	for _, c := range []struct {
		name      string
		after     time.Duration
		retention time.Duration
		replayed  bool
	}{
		{"grant key after 29 days", 29 * 24 * time.Hour, DefaultGrantKeyRetention, true},
		{"grant key after 31 days", 31 * 24 * time.Hour, DefaultGrantKeyRetention, false},
		{"grant key after 2h with a 1h retention", 2 * time.Hour, time.Hour, false},
	} {
		d, err := decide(10, first.ledgers, grant, now.Add(c.after), c.retention)
		if err != nil || d.result.Replayed != c.replayed {
			t.Errorf("%s: replayed=%v err=%v, want replayed=%v", c.name, d.result.Replayed, err, c.replayed)
		}
	}
	consume := Operation{Kind: OpConsume, Amount: 1, IdempotencyKey: "gen-1"}
	c, _ := decide(10, ledgers{}, consume, now, DefaultGrantKeyRetention)
	if d, _ := decide(9, c.ledgers, consume, now.Add(RequestKeysMaxAge-time.Minute), DefaultGrantKeyRetention); !d.result.Replayed {
		t.Error("consume key forgotten within its window")
	}
	if d, _ := decide(9, c.ledgers, consume, now.Add(RequestKeysMaxAge+time.Minute), DefaultGrantKeyRetention); d.result.Replayed {
		t.Error("consume key kept past its window")
	}
}

func TestOtherKeysNeverEvictAGrantKey(t *testing.T) {
	now := time.Now()
	grant := Operation{Kind: OpGrant, Amount: 1000, IdempotencyKey: "cs_live_abc"}
	d, _ := decide(0, ledgers{}, grant, now, DefaultGrantKeyRetention)
	l, balance := d.ledgers, d.credits
	for i := range 3 * RequestKeysMaxEntries {
		op := []OpKind{OpConsume, OpSet}[i%2]
		d, err := decide(balance, l, Operation{Kind: op, Amount: 1, IdempotencyKey: fmt.Sprint("k", i)}, now, DefaultGrantKeyRetention)
		if err != nil {
			t.Fatal(err)
		}
		l.requests, balance = d.ledgers.requests, d.credits
	}
	if again, _ := decide(balance, l, grant, now, DefaultGrantKeyRetention); !again.result.Replayed || again.result.Credits != 1000 {
		t.Fatalf("grant key evicted by other keyed traffic: %+v", again)
	}
}

func TestLedgersAreBoundedAndStoreNoRawKeys(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		kind OpKind
		max  int
		pick func(ledgers) string
	}{
		{OpConsume, RequestKeysMaxEntries, func(l ledgers) string { return l.requests }},
		{OpGrant, GrantKeysMaxEntries, func(l ledgers) string { return l.grants }},
	} {
		var l ledgers
		balance := int64(1 << 40)
		for i := range c.max + 20 {
			d, err := decide(balance, l, Operation{Kind: c.kind, Amount: 1, IdempotencyKey: fmt.Sprintf("checkout-session-%d", i)}, now, DefaultGrantKeyRetention)
			if err != nil {
				t.Fatal(err)
			}
			if v := c.pick(d.ledgers); c.kind == OpGrant {
				l.grants = v
			} else {
				l.requests = v
			}
			balance = d.credits
		}
		var entries []appliedRequest
		if err := json.Unmarshal([]byte(c.pick(l)), &entries); err != nil {
			t.Fatal(err)
		}
		if len(entries) != c.max {
			t.Fatalf("%s ledger holds %d entries, bound is %d", c.kind, len(entries), c.max)
		}
		if size := len(c.pick(l)); size > 100*c.max {
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
	if d, _ := decide(0, ledgers{grants: "{not json"}, Operation{Kind: OpGrant, Amount: 1, IdempotencyKey: "k"}, now, DefaultGrantKeyRetention); d.credits != 1 {
		t.Fatalf("a damaged ledger must not block operations: %+v", d)
	}
}
