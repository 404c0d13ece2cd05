package credits

import (
	"context"
	"errors"
	"testing"

	"github.com/go-logr/logr"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// TestFollowPaymentAnswersWithoutWritingWhenNoOneUserIsFound: a payment no lot names is
// not found once the index is complete, and may still be found (the caller answers so that
// Stripe retries) before; a payment two users' lots name is refused. None of these reaches
// the apiserver: the store has no client.
func TestFollowPaymentAnswersWithoutWritingWhenNoOneUserIsFound(t *testing.T) {
	users := NewIndex()
	synced := false
	store, err := NewStore(StoreOptions{Settings: account.DefaultSettings(), Objects: users, Synced: func() bool { return synced },
		WriteTimeout: 1, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	refund := account.Operation{Kind: account.OpRefund, Payment: "pi_1", Charge: account.ChargeState{Amount: 100, Refunded: 100}}
	if _, _, err := store.FollowPayment(context.Background(), refund); !errors.Is(err, ErrPaymentsNotIndexed) {
		t.Fatalf("before the index synced: %v, want ErrPaymentsNotIndexed", err)
	}
	synced = true
	if _, _, err := store.FollowPayment(context.Background(), refund); !errors.Is(err, account.ErrPaymentNotFound) {
		t.Fatalf("after: %v, want ErrPaymentNotFound", err)
	}
	for _, name := range []string{"a", "b"} {
		o := ucObj(name, "user_"+name, "1")
		o.Spec.Lots = []creditsv1alpha1.Lot{{ID: "lot-1", Payment: "pi_1"}}
		users.put(o)
	}
	if _, _, err := store.FollowPayment(context.Background(), refund); !errors.Is(err, account.ErrPaymentAmbiguous) {
		t.Fatalf("two users: %v, want ErrPaymentAmbiguous", err)
	}
}
