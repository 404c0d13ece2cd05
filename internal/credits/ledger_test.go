package credits

import (
	"context"
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
		{"set same", 5, Operation{Kind: OpSet, Amount: 5}, 5, false, nil},
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
		d, err := decide(c.balance, "", c.op, now)
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
	first, err := decide(5, "", grant, now)
	if err != nil || !first.write || first.credits != 15 || first.ledger == "" {
		t.Fatalf("first grant: %+v %v", first, err)
	}
	// The same request again, against the balance and ledger the first one wrote.
	again, err := decide(15, first.ledger, grant, now.Add(time.Minute))
	if err != nil || again.write || !again.result.Replayed || again.result.Credits != 15 {
		t.Fatalf("replay: %+v %v", again, err)
	}
	// Even after the balance moved on, a replay answers what the first application answered.
	later, err := decide(3, first.ledger, grant, now.Add(time.Hour))
	if err != nil || later.write || later.result.Credits != 15 {
		t.Fatalf("replay after other changes: %+v %v", later, err)
	}
	// The same key with another request is a conflict, not a replay.
	other := grant
	other.Amount = 11
	if _, err := decide(15, first.ledger, other, now); !errors.Is(err, ErrIdempotencyKeyReused) {
		t.Fatalf("same key, different amount: %v", err)
	}
	other = grant
	other.Kind = OpConsume
	if _, err := decide(15, first.ledger, other, now); !errors.Is(err, ErrIdempotencyKeyReused) {
		t.Fatalf("same key, different kind: %v", err)
	}
	// Past the retention age, the key is forgotten and applies again.
	expired, err := decide(15, first.ledger, grant, now.Add(LedgerMaxAge+time.Minute))
	if err != nil || !expired.write || expired.credits != 25 {
		t.Fatalf("after retention: %+v %v", expired, err)
	}
	// A set with a key to the balance it already has still records the key.
	set, err := decide(15, "", Operation{Kind: OpSet, Amount: 15, IdempotencyKey: "s1"}, now)
	if err != nil || !set.write || set.ledger == "" {
		t.Fatalf("keyed set to the same value: %+v %v", set, err)
	}
}

func TestLedgerIsBoundedAndStoresNoRawKeys(t *testing.T) {
	now := time.Now()
	ledger, balance := "", int64(0)
	for i := range LedgerMaxEntries + 20 {
		d, err := decide(balance, ledger, Operation{Kind: OpGrant, Amount: 1, IdempotencyKey: fmt.Sprintf("checkout-session-%d", i)}, now)
		if err != nil {
			t.Fatal(err)
		}
		ledger, balance = d.ledger, d.credits
	}
	var entries []appliedRequest
	if err := json.Unmarshal([]byte(ledger), &entries); err != nil {
		t.Fatal(err)
	}
	if len(entries) != LedgerMaxEntries {
		t.Fatalf("ledger holds %d entries, bound is %d", len(entries), LedgerMaxEntries)
	}
	if len(ledger) > 10_000 {
		t.Fatalf("ledger annotation is %d bytes", len(ledger))
	}
	if entries[len(entries)-1].Key != hashKey(fmt.Sprintf("checkout-session-%d", LedgerMaxEntries+19)) {
		t.Fatal("the newest key was not kept")
	}
	for _, e := range entries {
		if len(e.Key) != 32 {
			t.Fatalf("stored key %q is not a hash", e.Key)
		}
	}
	if d, _ := decide(0, "{not json", Operation{Kind: OpGrant, Amount: 1, IdempotencyKey: "k"}, now); d.credits != 1 {
		t.Fatalf("a damaged ledger must not block operations: %+v", d)
	}
}

func TestUserLocksSerializeAndHonorContext(t *testing.T) {
	locks := newUserLocks()
	unlock, err := locks.lock(context.Background(), "u")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := locks.lock(ctx, "u"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock on the same user: %v, want a deadline error", err)
	}
	other, err := locks.lock(context.Background(), "v")
	if err != nil {
		t.Fatalf("another user's lock must not wait: %v", err)
	}
	other()
	unlock()
	again, err := locks.lock(context.Background(), "u")
	if err != nil {
		t.Fatal(err)
	}
	again()
	if n := len(locks.locks); n != 0 {
		t.Fatalf("%d lock entries left behind", n)
	}
}
