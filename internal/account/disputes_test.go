package account

import (
	"fmt"
	"testing"
	"time"
)

// permutations are every order of n deliveries.
func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for at := 0; at <= len(p); at++ {
			q := append(append(append([]int{}, p[:at]...), n-1), p[at:]...)
			out = append(out, q)
		}
	}
	return out
}

// TestTwoDisputesConvergeWhateverTheOrder: an inquiry (du_1) opened and closed without a
// chargeback, and a chargeback (du_2) lost. The money is gone: every order of the four
// deliveries, each delivered twice, ends with nothing left, as a loss is final.
func TestTwoDisputesConvergeWhateverTheOrder(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	steps := []Operation{disputed("pi_1", "du_1", DisputeOpen), disputed("pi_1", "du_1", DisputeWon),
		disputed("pi_1", "du_2", DisputeOpen), disputed("pi_1", "du_2", DisputeLost)}
	for _, order := range permutations(len(steps)) {
		r := newRecord(t, 5)
		mustDo(t, r, purchase("cs_1", "pi_1", 10), now)
		for _, i := range order {
			mustDo(t, r, steps[i], now)
			mustDo(t, r, steps[i], now)
		}
		if got := r.available(); got != 5 {
			t.Errorf("order %v: balance %d after a lost chargeback, want 5 (what the user had besides the purchase)", order, got)
		}
		if d := lotOf(t, r.account(), "pi_1").Dispute; d.Status != DisputeLost || d.Credits != 10 {
			t.Errorf("order %v: dispute %+v, want lost with the 10 credits it took", order, d)
		}
	}
}

// TestTwoDisputesWonReturnTheCreditsOnce: an inquiry closed and a chargeback won; every
// order ends with the credits back once the dispute the lot follows is won, and a later
// dispute of the same payment takes them again.
func TestTwoDisputesWonReturnTheCreditsOnce(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 5)
	mustDo(t, r, purchase("cs_1", "pi_1", 10), now)
	for _, op := range []Operation{disputed("pi_1", "du_1", DisputeOpen), disputed("pi_1", "du_1", DisputeWon),
		disputed("pi_1", "du_1", DisputeWon), disputed("pi_1", "du_2", DisputeOpen), disputed("pi_1", "du_2", DisputeWon)} {
		mustDo(t, r, op, now)
	}
	if got := r.available(); got != 15 {
		t.Errorf("two disputes won in turn: balance %d, want 15 (5 and the 10 bought)", got)
	}
}

// TestAPurchaseReplayingAnAPIGrantRecordsItsPayment: a session granted through the API
// with the key stripe-checkout:<session>, then delivered by the webhook: granted once,
// and the lot then names the purchase and its PaymentIntent, so that a refund finds it.
func TestAPurchaseReplayingAnAPIGrantRecordsItsPayment(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	api := Operation{Kind: OpGrant, Amount: 10, IdempotencyKey: "stripe-checkout:cs_1", Terms: LotTerms{ID: "lot-api"}}
	mustDo(t, r, api, now)
	bought := purchase("cs_1", "pi_1", 10)
	bought.IdempotencyKey = "stripe-checkout:cs_1"
	res, changed, err := r.do(bought, now)
	if err != nil || !changed || !res.Replayed || res.LotID != "lot-api" {
		t.Fatalf("the webhook's purchase after the API's grant: %+v changed %v %v, want a replay of lot-api that writes", res, changed, err)
	}
	if l := lotOf(t, r.account(), "pi_1"); l.ID != "lot-api" || l.Source != SourceStripe || l.Reference != "cs_1" {
		t.Fatalf("the lot after the purchase's replay: %+v", l)
	}
	if _, changed, err := r.do(bought, now); err != nil || changed {
		t.Fatalf("a redelivery of the purchase: changed %v %v, want nothing written", changed, err)
	}
	mustDo(t, r, refunded("pi_1", 1250, 1250), now)
	if got := r.available(); got != 0 {
		t.Fatalf("the refund of the session granted through the API first: balance %d, want 0", got)
	}
}

// TestPaymentLabelsFollowTheLots: a record carries one label per PaymentIntent its lots
// name, added in the purchase's own write and removed in the write that drops the last lot
// naming it; labels of others are never touched.
func TestPaymentLabelsFollowTheLots(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	r.obj.Labels = map[string]string{"team": "a", PaymentLabelPrefix + "0": "not ours"}
	mustDo(t, r, purchase("cs_1", "pi_1", 10), now)
	if r.obj.Labels[PaymentLabel("pi_1")] != PaymentLabelValue || r.obj.Labels["team"] != "a" {
		t.Fatalf("labels after the purchase: %v", r.obj.Labels)
	}
	if _, ok := r.obj.Labels[PaymentLabelPrefix+"0"]; ok {
		t.Fatalf("a payment label no lot names was kept: %v", r.obj.Labels)
	}
	mustDo(t, r, Operation{Kind: OpConsume, Amount: 10}, now)
	if r.obj.Labels[PaymentLabel("pi_1")] == "" {
		t.Fatalf("a spent purchase within the refund window lost its label: %v", r.obj.Labels)
	}
	later := now.Add(PurchaseRefundWindow + time.Hour)
	mustDo(t, r, Operation{Kind: OpSet, Amount: 1}, later)
	if r.obj.Labels[PaymentLabel("pi_1")] == "" {
		t.Fatalf("a spent purchase closed after the refund window (kept among the closed lots) lost its label: %v", r.obj.Labels)
	}
	closeLots(t, r, MaxClosedLots, later)
	if _, ok := r.obj.Labels[PaymentLabel("pi_1")]; ok || r.obj.Labels["team"] != "a" {
		t.Fatalf("labels after the purchase's lot was dropped: %v", r.obj.Labels)
	}
	obj, err := NewObject("x", "ns", Account{UserID: "user_B", Available: 5, Lots: []Lot{{ID: "l1", Credits: 5, Remaining: 5,
		Priority: DefaultPriority, Source: SourceStripe, Reference: "cs_2", Payment: "pi_2", GrantedAt: now}}})
	if err != nil || obj.Labels[PaymentLabel("pi_2")] != PaymentLabelValue {
		t.Fatalf("a new record with a purchase: labels %v, %v", obj.Labels, err)
	}
}

// closeLots grants and voids n lots at at: each is a closed lot, newer than those before.
func closeLots(t *testing.T, r *record, n int, at time.Time) {
	t.Helper()
	for i := range n {
		id := fmt.Sprintf("closing-%d", i)
		mustDo(t, r, Operation{Kind: OpGrant, Amount: 1, Terms: LotTerms{ID: id}}, at)
		mustDo(t, r, Operation{Kind: OpVoid, Terms: LotTerms{ID: id}}, at.Add(time.Second))
	}
}
