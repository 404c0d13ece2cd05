package credits

import (
	"context"
	"errors"
	"testing"

	"github.com/go-logr/logr"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// TestFollowPaymentRefusesAPaymentTwoUsersName: a payment two users' lots name (a hand
// edit) is refused without a write or a LIST: the store has no client.
func TestFollowPaymentRefusesAPaymentTwoUsersName(t *testing.T) {
	users := NewIndex()
	store, err := NewStore(StoreOptions{Settings: account.DefaultSettings(), Objects: users, WriteTimeout: 1, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	refund := account.Operation{Kind: account.OpRefund, Payment: "pi_1", Charge: account.ChargeState{Amount: 100, Refunded: 100}}
	for _, name := range []string{"a", "b"} {
		o := ucObj(name, "user_"+name, "1")
		o.Spec.Lots = []creditsv1alpha1.Lot{{ID: "lot-1", Payment: "pi_1"}}
		users.put(o)
	}
	if _, _, err := store.FollowPayment(context.Background(), refund); !errors.Is(err, account.ErrPaymentAmbiguous) {
		t.Fatalf("two users: %v, want ErrPaymentAmbiguous", err)
	}
}
