package credits_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// Decisions on a cache that lags the apiserver, against the real apiserver: the writes that
// writePatch's preconditions (patch.go) refuse and the store decides again, and the
// refusals it decides again when the cache catches up (refusals.go).

func TestStoreRetriesConflictsFromAStaleCache(t *testing.T) {
	ctx := context.Background()
	user := "user_Stale1"
	stale := createObject(t, "stale-1", user, 1).DeepCopy()
	// Another writer moves the object on; this cache still shows the old resourceVersion.
	if err := k8sClient.Patch(ctx, stale.DeepCopy(), client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"credits":2}}`))); err != nil {
		t.Fatal(err)
	}
	store, writer := storeWith(t, showing(stale))

	if res, err := store.Apply(ctx, account.UserID(user), account.Operation{Kind: account.OpSet, Amount: 5}); err != nil || res.Credits != 5 {
		t.Fatalf("Apply: %+v, %v", res, err)
	}
	if writer.conflicts.Load() < 1 {
		t.Fatal("no conflict was exercised: the write did not carry the stale resourceVersion")
	}
	if got := storedBalance(t, "stale-1"); got != 5 {
		t.Fatalf("stored %d, want 5", got)
	}
}

// following is a view of the cache as it is.
func following(objs []*creditsv1alpha1.UserCredits) []*creditsv1alpha1.UserCredits { return objs }

// setThroughStore sets user's balance through a store that follows the cache and returns
// the object as stored, which a test's lagging cache can then show.
func setThroughStore(t *testing.T, user string, balance int64) *creditsv1alpha1.UserCredits {
	t.Helper()
	ctx := context.Background()
	store, _ := storeWith(t, following)
	if _, err := store.Apply(ctx, account.UserID(user), account.Operation{Kind: account.OpSet, Amount: balance}); err != nil {
		t.Fatal(err)
	}
	stored := &creditsv1alpha1.UserCredits{}
	key := client.ObjectKey{Namespace: testNamespace, Name: account.ObjectNameForUser(user)}
	if err := k8sClient.Get(ctx, key, stored); err != nil {
		t.Fatal(err)
	}
	return stored
}

// applyOnStale applies op for user through a store whose cache still shows decidedOn, and
// checks that it answers want and that want is stored; it returns the store's client.
func applyOnStale(t *testing.T, user string, decidedOn *creditsv1alpha1.UserCredits, op account.Operation, want int64) *countingClient {
	t.Helper()
	store, writer := storeWith(t, showing(decidedOn))
	if res, err := store.Apply(context.Background(), account.UserID(user), op); err != nil || res.Credits != want {
		t.Fatalf("%s decided on a stale cache: %+v, %v; want %d", op.Kind, res, err, want)
	}
	if got := storedBalance(t, decidedOn.Name); got != want {
		t.Fatalf("stored %d, want %d", got, want)
	}
	return writer
}

// TestStoreStatusWritesCostNoConflict: the controller's status writes move the
// resourceVersion but nothing a decision reads, so a write decided before one lands
// without a conflict, while a spec change still refuses it (the test above).
func TestStoreStatusWritesCostNoConflict(t *testing.T) {
	ctx := context.Background()
	user := "user_Status1"
	decidedOn := setThroughStore(t, user, 5)
	moved := decidedOn.DeepCopy()
	moved.Status.Credits = 5
	if err := k8sClient.Status().Update(ctx, moved); err != nil {
		t.Fatal(err)
	}
	writer := applyOnStale(t, user, decidedOn, account.Operation{Kind: account.OpConsume, Amount: 2}, 3) // a cache that has not seen the status write
	if n := writer.conflicts.Load(); n != 0 {
		t.Fatalf("a status write cost %d refused writes", n)
	}
}

// deletedBehindTheCache sets user's balance through a store, then deletes the object; it
// returns the object as it was, which a test's lagging cache can go on showing.
func deletedBehindTheCache(t *testing.T, user string, balance int64) *creditsv1alpha1.UserCredits {
	t.Helper()
	decidedOn := setThroughStore(t, user, balance)
	if err := k8sClient.Delete(context.Background(), decidedOn.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	return decidedOn
}

// TestStoreWriteToARecreatedObjectIsStale: an object deleted and created again under the
// same name (kubectl replace --force, a GitOps tool re-creating it) starts again at
// generation 1 and may carry the old annotations, so only its UID tells it apart from the
// one a cached decision read. A write decided on the old object must not land on the new.
func TestStoreWriteToARecreatedObjectIsStale(t *testing.T) {
	user := "user_Recreated1"
	decidedOn := deletedBehindTheCache(t, user, 5)
	recreated := &creditsv1alpha1.UserCredits{
		ObjectMeta: metav1.ObjectMeta{Name: decidedOn.Name, Namespace: testNamespace, Annotations: decidedOn.Annotations},
		Spec:       creditsv1alpha1.UserCreditsSpec{UserID: user, Credits: 100},
	}
	if err := k8sClient.Create(context.Background(), recreated); err != nil {
		t.Fatal(err)
	}
	if recreated.Generation != decidedOn.Generation {
		t.Fatalf("the recreated object is at generation %d, the old one was at %d: the case is not exercised", recreated.Generation, decidedOn.Generation)
	}
	// 99: decided on the object that is stored now, for a cache that has not seen the delete.
	if writer := applyOnStale(t, user, decidedOn, account.Operation{Kind: account.OpConsume, Amount: 1}, 99); writer.conflicts.Load() < 1 {
		t.Fatal("no refused write: the write did not test the object's identity")
	}
}

// TestStoreWriteToADeletedObjectIsDecidedAgain: an object deleted between a cached
// decision and its write answers the patch 404; the store decides again on what the
// apiserver holds (no object), so a set creates the record instead of failing.
func TestStoreWriteToADeletedObjectIsDecidedAgain(t *testing.T) {
	user := "user_Deleted1"
	decidedOn := deletedBehindTheCache(t, user, 10)
	applyOnStale(t, user, decidedOn, account.Operation{Kind: account.OpSet, Amount: 4, IdempotencyKey: "after-delete"}, 4) // created again
}

// TestStoreWriteRefusedByValidation: a write the apiserver refuses for itself (here the
// annotations would pass their size limit) is answered with an error after one read that
// shows nothing moved, not retried as if it were stale, and changes nothing.
func TestStoreWriteRefusedByValidation(t *testing.T) {
	ctx := context.Background()
	user := "user_Full1"
	obj := &creditsv1alpha1.UserCredits{
		ObjectMeta: metav1.ObjectMeta{Name: "full-1", Namespace: testNamespace,
			Annotations: map[string]string{"example.com/filler": strings.Repeat("x", 256*1024-64)}},
		Spec: creditsv1alpha1.UserCreditsSpec{UserID: user, Credits: 9},
	}
	if err := k8sClient.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	store, writer := storeWith(t, showing(obj))
	if _, err := store.Apply(ctx, account.UserID(user), account.Operation{Kind: account.OpConsume, Amount: 1}); err == nil {
		t.Fatal("a write over the annotation limit succeeded")
	}
	if n := writer.conflicts.Load(); n != 1 {
		t.Fatalf("%d refused writes, want 1 (no retry once the read shows nothing moved)", n)
	}
	if got := storedBalance(t, "full-1"); got != 9 {
		t.Fatalf("stored %d, want 9", got)
	}
}

// TestRefusalSeesAGrantMadeBehindItsBack: a user refused at 0 is given credits by kubectl
// (or a GitOps tool, or another replica) and consumes again at once, before this replica's
// informer has shown the change. The refusal budget (one confirmation read a second) is
// spent, so the consume must not be refused on the cache that has not caught up.
func TestRefusalSeesAGrantMadeBehindItsBack(t *testing.T) {
	ctx := context.Background()
	user := "user_Behind1"
	store, _ := storeWith(t, following)
	obj := &creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{Name: account.ObjectNameForUser(user), Namespace: testNamespace}}
	consume := account.Operation{Kind: account.OpConsume, Amount: 1}
	for round := range 5 {
		if _, err := store.Apply(ctx, account.UserID(user), account.Operation{Kind: account.OpSet, Amount: 0}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Apply(ctx, account.UserID(user), consume); !errors.Is(err, account.ErrInsufficientCredits) {
			t.Fatalf("round %d: consume at 0: %v, want insufficient credits", round, err)
		}
		if err := k8sClient.Patch(ctx, obj.DeepCopy(), client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"credits":10}}`))); err != nil {
			t.Fatal(err)
		}
		if res, err := store.Apply(ctx, account.UserID(user), consume); err != nil || res.Credits != 9 {
			t.Fatalf("round %d: consume right after a grant behind the API's back: %+v, %v (want 9 left)", round, res, err)
		}
	}
}

// TestVoidOfALotTheCacheDoesNotShowYet: a lot granted through another replica (or a
// CreditGrant's controller) is voided through this one before its informer has shown the
// grant. A 404 is final to a caller ("Grant not found"), so the store must not answer it
// from the cache: as for a hold, it reads the record before refusing.
func TestVoidOfALotTheCacheDoesNotShowYet(t *testing.T) {
	ctx := context.Background()
	user := "user_VoidBehind1"
	before := setThroughStore(t, user, 5)
	other, _ := storeWith(t, following) // another replica
	granted, err := other.Apply(ctx, account.UserID(user), account.Operation{Kind: account.OpGrant, Amount: 3, IdempotencyKey: "g1"})
	if err != nil || granted.LotID == "" {
		t.Fatalf("grant: %+v, %v", granted, err)
	}
	void := account.Operation{Kind: account.OpVoid, Terms: account.LotTerms{ID: granted.LotID}}
	applyOnStale(t, user, before, void, 5)
}
