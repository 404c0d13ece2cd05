package operator_test

import (
	"context"
	"encoding/json"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// TestLotEditLeavesHoldsReleasable: docs/api.md lets an operator edit one lot's remaining
// with spec.credits ("a grant's never above its credits"), and issue 20 asks that an edit
// that would break the lot invariant be refused or applied with documented semantics, never
// silently wrong. A grant's lot with credits held by an open hold, edited to remaining ==
// credits, is accepted by the apiserver; the hold's release must then still work (or the
// edit must have been refused). Found by TestLotsMatchTheModel, whose edits now keep
// room for the held credits so that it goes on checking the rest.
func TestLotEditLeavesHoldsReleasable(t *testing.T) {
	user := "user_LotEditHeld"
	admin := serviceAccountToken(t, "lots-edit-admin", "credits-admin")
	if status, body := request(t, "POST", creditsURL(apiBase, "/api/credits/grant", user), admin, `{"credits":10,"priority":10}`,
		"Idempotency-Key", user+"-grant"); status != 200 {
		t.Fatalf("grant: %d %s", status, body)
	}
	status, body := request(t, "POST", creditsURL(apiBase, "/api/credits/reserve", user), admin, `{"credits":4,"ttlSeconds":600}`)
	var hold struct {
		ReservationID string `json:"reservationId"`
	}
	if status != 200 || json.Unmarshal([]byte(body), &hold) != nil || hold.ReservationID == "" {
		t.Fatalf("reserve: %d %s", status, body)
	}

	// kubectl edit: the lot's remaining (6, 4 held) to its credits (10), spec.credits with it.
	var obj *creditsv1alpha1.UserCredits
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error { // the controller writes status meanwhile
		obj = statusOf(t, user)
		before := obj.DeepCopy()
		if len(obj.Spec.Lots) != 1 || obj.Spec.Lots[0].Remaining != 6 {
			t.Fatalf("lots %+v, want one lot with 6 left", obj.Spec.Lots)
		}
		obj.Spec.Lots[0].Remaining, obj.Spec.Credits = 10, 10
		return k8sClient.Patch(context.Background(), obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
	if apierrors.IsInvalid(err) {
		t.Logf("the edit is refused: %v", err)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	status, body = request(t, "POST", creditsURL(apiBase, "/api/credits/reservations/"+hold.ReservationID+"/release", user), admin, "")
	if status != 200 {
		t.Errorf("the apiserver accepted the edit, and then the hold's release answered %d %s: the record is stuck "+
			"(its lot would hold more than it was granted)", status, body)
	}
	stored := &creditsv1alpha1.UserCredits{}
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(obj), stored); err != nil {
		t.Fatal(err)
	}
	if err := lotInvariant(stored); err != nil {
		t.Error(err)
	}
}
