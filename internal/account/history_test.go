package account

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAccountHistoryKeepsTheLast100NewestFirst(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	for i := range 250 {
		op := Operation{Kind: OpGrant, Amount: int64(i + 1)}
		if i%3 == 1 {
			op = Operation{Kind: OpConsume, Amount: 1}
		}
		r.cache = i > 120 // what the informer cache keeps is enough to go on appending
		if _, _, err := r.do(op, start.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	r.cache = false
	h := r.account().History()
	if len(h) != HistoryLength {
		t.Fatalf("%d entries, want %d", len(h), HistoryLength)
	}
	for i, tr := range h {
		at := start.Add(time.Duration(249-i) * time.Second).UTC()
		if !tr.At.Equal(at) {
			t.Fatalf("entry %d at %v, want %v (newest first)", i, tr.At, at)
		}
	}
	if h[0].Balance != r.available() {
		t.Fatalf("newest entry's balance %d, balance %d", h[0].Balance, r.available())
	}
	if h[0].Kind != OpGrant || h[0].Credits != 250 || h[1].Kind != OpGrant || h[2].Kind != OpConsume {
		t.Fatalf("newest entries %+v", h[:3])
	}
	if n := len(newRecord(t, 0).account().History()); n != 0 {
		t.Fatalf("empty history has %d entries", n)
	}
}

// TestAccountHistoryReadsEntriesOfEveryVersion: entries written before purchases existed
// (four fields) and purchases (a fifth, the reference) read back side by side.
func TestAccountHistoryReadsEntriesOfEveryVersion(t *testing.T) {
	r := newRecord(t, 5)
	r.obj.Annotations = map[string]string{
		HistorySeqAnnotation:      "4",
		HistoryChunkAnnotation(0): "g,20,27,1800000000;b,10,37,1800000060,cs_test_x;s,5,5,1800000120;q,1,1,1800000180",
	}
	at := func(s int64) time.Time { return time.Unix(s, 0).UTC() }
	want := []Transaction{
		{Kind: OpSet, Credits: 5, Balance: 5, At: at(1800000120)},
		{Kind: KindPurchase, Credits: 10, Balance: 37, At: at(1800000060), Reference: "cs_test_x"},
		{Kind: OpGrant, Credits: 20, Balance: 27, At: at(1800000000)},
	}
	h := r.account().History()
	if len(h) != len(want) {
		t.Fatalf("history %+v, want %+v (an unknown kind skipped)", h, want)
	}
	for i := range want {
		if h[i] != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, h[i], want[i])
		}
	}
}

// TestAccountHandEditedHistoryCostsNothing (attack: history annotation edited by hand): a
// count that is negative, garbage or huge with the chunks gone is read in bounded time,
// reported as damage, and repaired by the next write; the balance is served as ever.
func TestAccountHandEditedHistoryCostsNothing(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, seq := range []string{"-7", "lots", "900000000000000000", "9223372036854775807"} {
		r := newRecord(t, 5)
		r.obj.Annotations = map[string]string{HistorySeqAnnotation: seq}
		start := time.Now()
		a := r.account()
		h := a.History()
		if took := time.Since(start); took > 100*time.Millisecond || len(h) != 0 {
			t.Fatalf("history-seq=%s: %d entries in %v", seq, len(h), took)
		}
		if (seq == "900000000000000000") != (len(a.Damage()) == 0) {
			t.Errorf("history-seq=%s: damage %v", seq, a.Damage())
		}
		if a.Available != 5 {
			t.Fatalf("history-seq=%s: balance %d", seq, a.Available)
		}
		if _, _, err := r.do(Operation{Kind: OpConsume, Amount: 2}, now); err != nil {
			t.Fatalf("history-seq=%s: consume %v", seq, err)
		}
		if h := r.account().History(); len(h) != 1 || h[0].Credits != 2 || h[0].Balance != 3 {
			t.Errorf("history-seq=%s: after a consume %+v", seq, h)
		}
	}
}

// TestAccountPurchaseIsAGrantRecordedAsAPurchase: a grant that names the Checkout Session
// paying for it is a grant in every way that counts money (its key in the grant ledger,
// applied once), and the history records it as a purchase naming the session.
func TestAccountPurchaseIsAGrantRecordedAsAPurchase(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	purchase := Operation{Kind: OpGrant, Amount: 10, IdempotencyKey: "stripe-checkout:cs_test_a1", Purchase: "cs_test_a1"}
	r := newRecord(t, 5)
	if _, _, err := r.do(purchase, now); err != nil {
		t.Fatal(err)
	}
	res, changed, err := r.do(purchase, now.Add(time.Hour)) // Stripe redelivers
	if err != nil || changed || !res.Replayed || r.available() != 15 {
		t.Fatalf("redelivery: %+v %v, balance %d; want a replay at 15", res, err, r.available())
	}
	a := r.account()
	want := Transaction{Kind: KindPurchase, Credits: 10, Balance: 15, At: now.UTC(), Reference: "cs_test_a1"}
	if h := a.History(); len(h) != 1 || h[0] != want {
		t.Fatalf("history %+v, want [%+v]", h, want)
	}
	if len(a.grants.entries) != 1 || a.grants.entries[0].Op != OpGrant || len(a.requests.entries) != 0 {
		t.Fatalf("grant ledger %+v, requests ledger %+v: a purchase's key must be a grant's", a.grants.entries, a.requests.entries)
	}

	// A session granted before purchases were recorded as such (a plain grant under the
	// same key) is not granted again when Stripe redelivers it.
	old := newRecord(t, 5)
	if _, _, err := old.do(Operation{Kind: OpGrant, Amount: 10, IdempotencyKey: purchase.IdempotencyKey}, now); err != nil {
		t.Fatal(err)
	}
	if res, _, err := old.do(purchase, now.Add(time.Hour)); err != nil || !res.Replayed || old.available() != 15 {
		t.Fatalf("redelivery after an upgrade: %+v %v, balance %d", res, err, old.available())
	}

	// A reference that the history could not hold, or on anything but a grant, is refused.
	for _, op := range []Operation{
		{Kind: OpGrant, Amount: 1, Purchase: "cs_1;g,1,1,1"},
		{Kind: OpGrant, Amount: 1, Purchase: "cs,1"},
		{Kind: OpGrant, Amount: 1, Purchase: strings.Repeat("c", 256)},
		{Kind: OpConsume, Amount: 1, Purchase: "cs_1"},
		{Kind: OpSet, Amount: 1, Purchase: "cs_1"},
	} {
		if _, _, err := newRecord(t, 5).do(op, now); !errors.Is(err, ErrInvalidOperation) {
			t.Errorf("%+v: %v, want ErrInvalidOperation", op, err)
		}
	}
}

// TestAccountBatchAcrossHistoryChunksKeepsEveryEntry: one write of a batch that fills a
// chunk and starts the next writes both.
func TestAccountBatchAcrossHistoryChunksKeepsEveryEntry(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 100)
	for range 7 {
		if _, _, err := r.do(Operation{Kind: OpConsume, Amount: 1}, now); err != nil {
			t.Fatal(err)
		}
	}
	ops := make([]Operation, 25) // entries 8 to 32: the rest of chunk 0, chunks 1 and 2, part of 3
	for i := range ops {
		ops[i] = Operation{Kind: OpConsume, Amount: 1}
	}
	d := r.account().ApplyAll("user_A", ops, now, r.rules)
	r.write(d.Account)
	h := r.account().History()
	if len(h) != 32 || h[0].Balance != 68 || h[31].Balance != 99 {
		t.Fatalf("after one write of a batch of 25 over 7 entries: %d entries, newest %+v", len(h), h[0])
	}
	for i := 1; i < len(h); i++ {
		if h[i].Balance != h[i-1].Balance+1 {
			t.Fatalf("entry %d: balance %d after %d: an entry is missing", i, h[i].Balance, h[i-1].Balance)
		}
	}
}
