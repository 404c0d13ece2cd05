package payments

import (
	"testing"

	"github.com/gitread/usercredits-operator/internal/account"
)

// TestAPurchaseCarriesWhatCameBeforeIt: a purchase's grant carries the refunds and disputes
// remembered for its payment before it (one write), and follows those remembered while it
// was written (read again after it).
func TestAPurchaseCarriesWhatCameBeforeIt(t *testing.T) {
	session := map[string]any{"id": "cs_e", "client_reference_id": "user_A", "payment_status": "paid", "currency": "usd",
		"amount_subtotal": 1250, "amount_total": 1250, "payment_intent": "pi_e"}
	refund := account.ChargeState{Amount: 1250, Refunded: 1250}
	store := &recordingStore{early: []account.ChargeState{refund}}
	if code := send(t, newWebhook(store, nil), "evt_e1", evCompleted, session); code != 200 || len(store.ops) != 1 || store.ops[0].Charge != refund {
		t.Fatalf("a purchase after its refund: %d, operations %+v; want one grant carrying the refund", code, store.ops)
	}
	dispute := account.ChargeState{Dispute: "du_e", DisputeStatus: account.DisputeOpen}
	store = &recordingStore{early: []account.ChargeState{{}, dispute}, follow: func(account.Operation) (account.Result, error) { return account.Result{}, nil }}
	code := send(t, newWebhook(store, nil), "evt_e2", evCompleted, session)
	want := account.Operation{Kind: account.OpDispute, Payment: "pi_e", Charge: dispute}
	if code != 200 || len(store.ops) != 2 || store.ops[0].Charge != (account.ChargeState{}) || store.ops[1] != want {
		t.Fatalf("a dispute remembered while the purchase was written: %d, operations %+v; want the grant, then %+v", code, store.ops, want)
	}
}
