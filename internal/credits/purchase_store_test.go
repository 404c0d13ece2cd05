package credits_test

import (
	"context"
	"errors"
	"testing"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/credits"
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

// emptyIndex is an index that shows no object: a replica whose cache has not seen any.
type emptyIndex struct{ credits.Objects }

func (emptyIndex) Payers(string) []string { return nil }

// failingLists is an apiserver reader whose LISTs fail: the apiserver unreachable.
type failingLists struct{ client.Reader }

func (failingLists) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("the apiserver is unreachable")
}

// TestFollowPaymentConfirmsAMissAtTheAPIServer: a refund reaching a replica whose index does
// not show the purchase (its cache lags) finds it by the payment's label at the apiserver
// and applies; a payment no record names is not found only once the apiserver says so; and
// when the apiserver cannot say, the answer is an error (Stripe retries), never "not found".
func TestFollowPaymentConfirmsAMissAtTheAPIServer(t *testing.T) {
	ctx := context.Background()
	granting, _ := storeWith(t, nil)
	user, pi := "user_FollowLag1", "pi_FollowLag1"
	bought := account.Operation{Kind: account.OpGrant, Amount: 10, IdempotencyKey: "stripe-checkout:cs_FollowLag1", Purchase: "cs_FollowLag1", Payment: pi}
	if _, err := granting.Apply(ctx, account.UserID(user), bought); err != nil {
		t.Fatal(err)
	}
	lagging := newStore(t, credits.StoreOptions{Objects: emptyIndex{users}, Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		Namespace: testNamespace, Log: logr.Discard()})
	refund := account.Operation{Kind: account.OpRefund, Payment: pi, Charge: account.ChargeState{Amount: 1250, Refunded: 1250}}
	if got, res, err := lagging.FollowPayment(ctx, refund); err != nil || got != account.UserID(user) || res.Credits != 0 {
		t.Fatalf("a refund on a replica whose index does not show the purchase: %s %+v %v, want it applied", got, res, err)
	}
	if got := storedBalanceOf(t, user); got != 0 {
		t.Fatalf("stored balance %d after the full refund, want 0", got)
	}
	other := refund
	other.Payment = "pi_FollowNobody"
	if _, _, err := lagging.FollowPayment(ctx, other); !errors.Is(err, account.ErrPaymentNotFound) {
		t.Fatalf("a payment no record names: %v, want ErrPaymentNotFound", err)
	}
	unreachable := newStore(t, credits.StoreOptions{Objects: emptyIndex{users}, Client: mgr.GetClient(), APIReader: failingLists{mgr.GetAPIReader()},
		Namespace: testNamespace, Log: logr.Discard()})
	if _, _, err := unreachable.FollowPayment(ctx, other); err == nil || errors.Is(err, account.ErrPaymentNotFound) {
		t.Fatalf("a miss the apiserver cannot confirm: %v, want an error that is not ErrPaymentNotFound", err)
	}
}

// TestARefundBeforeItsPurchaseIsRemembered: a refund and a dispute of a payment no record
// names are answered not found, and remembered at the apiserver, merged, for a purchase of
// the payment that comes later.
func TestARefundBeforeItsPurchaseIsRemembered(t *testing.T) {
	ctx := context.Background()
	store, _ := storeWith(t, nil)
	pi := "pi_EarlyStore1"
	for _, op := range []account.Operation{
		{Kind: account.OpRefund, Payment: pi, Charge: account.ChargeState{Amount: 1250, Refunded: 300}},
		{Kind: account.OpDispute, Payment: pi, Charge: account.ChargeState{Dispute: "du_EarlyStore1", DisputeStatus: account.DisputeOpen}},
		{Kind: account.OpRefund, Payment: pi, Charge: account.ChargeState{Amount: 1250, Refunded: 100}}, // older, late
	} {
		if _, _, err := store.FollowPayment(ctx, op); !errors.Is(err, account.ErrPaymentNotFound) {
			t.Fatalf("%s before its purchase: %v, want ErrPaymentNotFound", op.Kind, err)
		}
	}
	got, err := store.EarlyCharge(ctx, pi)
	want := account.ChargeState{Amount: 1250, Refunded: 300, Dispute: "du_EarlyStore1", DisputeStatus: account.DisputeOpen}
	if err != nil || got != want {
		t.Fatalf("remembered: %+v %v, want %+v", got, err, want)
	}
	if none, err := store.EarlyCharge(ctx, "pi_EarlyStoreNone"); err != nil || none != (account.ChargeState{}) {
		t.Fatalf("a payment nothing came for: %+v %v", none, err)
	}
}
