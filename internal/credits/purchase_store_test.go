package credits_test

import (
	"context"
	"testing"

	"github.com/gitread/usercredits-operator/internal/account"
)

// TestStoredPurchaseIsReadBackAndAppliedOnce: against the apiserver, a purchase is applied
// once whatever is redelivered (as a purchase, or as a plain grant under its key), and the
// history read back from the stored object names its session.
func TestStoredPurchaseIsReadBackAndAppliedOnce(t *testing.T) {
	ctx := context.Background()
	store, _ := storeWith(t, nil)
	user := "user_Purchase1"
	if _, err := store.Apply(ctx, account.UserID(user), account.Operation{Kind: account.OpSet, Amount: 3}); err != nil {
		t.Fatal(err)
	}
	purchase := account.Operation{Kind: account.OpGrant, Amount: 10, IdempotencyKey: "stripe-checkout:cs_test_store1", Purchase: "cs_test_store1"}
	plain := purchase
	plain.Purchase = ""
	for i, op := range []account.Operation{purchase, purchase, plain} {
		res, err := store.Apply(ctx, account.UserID(user), op)
		if err != nil || res.Credits != 13 || res.Replayed != (i > 0) {
			t.Fatalf("delivery %d: %+v %v, want 13 (replayed after the first)", i, res, err)
		}
	}
	if got := storedBalanceOf(t, user); got != 13 {
		t.Fatalf("stored balance %d, want 13", got)
	}
	h, err := store.Transactions(ctx, account.UserID(user))
	if err != nil || len(h) != 2 {
		t.Fatalf("history %+v %v, want the purchase and the set", h, err)
	}
	if p := h[0]; p.Kind != account.KindPurchase || p.Reference != "cs_test_store1" || p.Credits != 10 || p.Balance != 13 {
		t.Fatalf("newest entry %+v, want the purchase of 10 naming cs_test_store1", p)
	}
	if s := h[1]; s.Kind != account.OpSet || s.Reference != "" || s.Credits != 3 || s.Balance != 3 {
		t.Fatalf("oldest entry %+v, want the set to 3", s)
	}
}
