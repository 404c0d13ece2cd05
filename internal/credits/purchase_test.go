package credits

import (
	"strings"
	"testing"
	"time"
)

// TestPurchaseIsAGrantRecordedAsAPurchase: a grant that names the Checkout Session paying
// for it is a grant in every way that counts money (its key in the grant ledger, applied
// once), and the history records it as a purchase naming the session.
func TestPurchaseIsAGrantRecordedAsAPurchase(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	purchase := Operation{Kind: OpGrant, Amount: 10, IdempotencyKey: "stripe-checkout:cs_test_a1", Purchase: "cs_test_a1"}
	u := &user{credits: 5}
	if _, err := u.do(purchase, now); err != nil {
		t.Fatal(err)
	}
	d, err := u.do(purchase, now.Add(time.Hour)) // Stripe redelivers
	if err != nil || !d.noop || !d.result.Replayed || u.credits != 15 {
		t.Fatalf("redelivery: %+v %v, balance %d; want a replay at 15", d.result, err, u.credits)
	}
	h := History(u.ann)
	want := Transaction{Kind: KindPurchase, Credits: 10, Balance: 15, At: now.UTC(), Reference: "cs_test_a1"}
	if len(h) != 1 || h[0] != want {
		t.Fatalf("history %+v, want [%+v]", h, want)
	}
	ledger := parseLedger(u.ann[AppliedGrantsAnnotation], now)
	if len(ledger) != 1 || ledger[0].Op != OpGrant || u.ann[AppliedRequestsAnnotation] != "" {
		t.Fatalf("grant ledger %+v, requests ledger %q: a purchase's key must be a grant's", ledger, u.ann[AppliedRequestsAnnotation])
	}

	// A session granted before purchases were recorded as such (a plain grant under the
	// same key) is not granted again when Stripe redelivers it.
	old := &user{credits: 5}
	if _, err := old.do(Operation{Kind: OpGrant, Amount: 10, IdempotencyKey: purchase.IdempotencyKey}, now); err != nil {
		t.Fatal(err)
	}
	if d, err := old.do(purchase, now.Add(time.Hour)); err != nil || !d.result.Replayed || old.credits != 15 {
		t.Fatalf("redelivery after an upgrade: %+v %v, balance %d", d.result, err, old.credits)
	}

	// A reference that the history could not hold, or on anything but a grant, is refused.
	for _, op := range []Operation{
		{Kind: OpGrant, Amount: 1, Purchase: "cs_1;g,1,1,1"},
		{Kind: OpGrant, Amount: 1, Purchase: "cs,1"},
		{Kind: OpGrant, Amount: 1, Purchase: strings.Repeat("c", 256)},
		{Kind: OpConsume, Amount: 1, Purchase: "cs_1"},
		{Kind: OpSet, Amount: 1, Purchase: "cs_1"},
	} {
		if _, err := (&user{credits: 5}).do(op, now); err != ErrInvalidOperation {
			t.Errorf("%+v: %v, want ErrInvalidOperation", op, err)
		}
	}
}

// TestHistoryReadsEntriesOfEveryVersion: entries written before purchases existed (four
// fields) and purchases (a fifth, the reference) read back side by side.
func TestHistoryReadsEntriesOfEveryVersion(t *testing.T) {
	ann := map[string]string{
		HistorySeqAnnotation:      "4",
		HistoryChunkAnnotation(0): "g,20,27,1800000000;b,10,37,1800000060,cs_test_x;s,5,5,1800000120;q,1,1,1800000180",
	}
	at := func(s int64) time.Time { return time.Unix(s, 0).UTC() }
	want := []Transaction{
		{Kind: OpSet, Credits: 5, Balance: 5, At: at(1800000120)},
		{Kind: KindPurchase, Credits: 10, Balance: 37, At: at(1800000060), Reference: "cs_test_x"},
		{Kind: OpGrant, Credits: 20, Balance: 27, At: at(1800000000)},
	}
	h := History(ann)
	if len(h) != len(want) {
		t.Fatalf("history %+v, want %+v (an unknown kind skipped)", h, want)
	}
	for i := range want {
		if h[i] != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, h[i], want[i])
		}
	}
}
