package credits_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/credits"
	"github.com/gitread/usercredits-operator/test/framework"
)

// unobserved is a view of the index whose informer reports nothing: one whose first list
// is not in yet, and so shows neither an object nor its deletion.
type unobserved struct{ viewObjects }

func (unobserved) Observe(credits.Observer) {}

// TestWarmUpForgetsARecordDeletedBeforeTheFirstList: a record a warming replica read is
// remembered until its index shows it; when the object is deleted before the informer's
// first list, the index never shows it nor its deletion, and once synced the store checks
// it at the apiserver and drops it (Start), so the user is answered as having no record.
func TestWarmUpForgetsARecordDeletedBeforeTheFirstList(t *testing.T) {
	ctx := context.Background()
	user := "user_WarmGone1"
	obj := createObject(t, account.ObjectNameForUser(user), user, 10)
	synced := &atomic.Bool{}
	store := newStore(t, credits.StoreOptions{
		Objects: unobserved{viewObjects{Objects: users, view: showing()}}, Synced: synced.Load,
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Namespace: testNamespace, Log: logr.Discard(),
	})
	if n, err := store.Balance(ctx, account.UserID(user)); err != nil || n != 10 {
		t.Fatalf("while warming up: %d %v, want 10", n, err)
	}
	if err := k8sClient.Delete(ctx, obj); err != nil {
		t.Fatal(err)
	}
	synced.Store(true) // the first list, taken after the deletion, does not hold the object
	startCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := store.Start(startCtx); err != nil || startCtx.Err() != nil {
		t.Fatalf("the store's warm-up did not end: %v %v", err, startCtx.Err())
	}
	if n, err := store.Balance(ctx, account.UserID(user)); err != nil || n != 0 {
		t.Fatalf("once synced, a user whose only object was deleted during warm-up: %d %v, want 0", n, err)
	}
}

// TestWarmUpRefusesAUserASecondObjectClaimsLater: a warming replica that has read a user's
// one object judges it again against the objects under other names at every read, so a
// duplicate made afterwards (a GitOps tool's) is refused as it would be when synced.
func TestWarmUpRefusesAUserASecondObjectClaimsLater(t *testing.T) {
	ctx := context.Background()
	user := account.UserID("user_WarmLateDup1")
	createObject(t, account.ObjectNameForUser(string(user)), string(user), 10)
	store := newStore(t, credits.StoreOptions{
		Objects: unobserved{viewObjects{Objects: users, view: showing()}}, Synced: func() bool { return false },
		Foreign: viewObjects{Objects: users, view: notDerived}, ForeignSynced: func() bool { return true },
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Namespace: testNamespace, Log: logr.Discard(),
	})
	if n, err := store.Balance(ctx, user); err != nil || n != 10 {
		t.Fatalf("while warming up, one object: %d %v, want 10", n, err)
	}
	createObject(t, "warm-late-dup-from-git", string(user), 5)
	framework.Eventually(t, 5*time.Second, func() error {
		if n := len(users.Lookup(string(user))); n != 2 {
			return fmt.Errorf("the index shows %d objects for the user", n)
		}
		return nil
	})
	if n, err := store.Balance(ctx, user); !errors.Is(err, account.ErrUntrusted) {
		t.Fatalf("a user a second object claims since it was read: %d %v, want ErrUntrusted", n, err)
	}
	if _, err := store.Apply(ctx, user, account.Operation{Kind: account.OpConsume, Amount: 3}); !errors.Is(err, account.ErrUntrusted) {
		t.Fatalf("a consume of it: %v, want ErrUntrusted", err)
	}
	if a, b := storedBalance(t, account.ObjectNameForUser(string(user))), storedBalance(t, "warm-late-dup-from-git"); a != 10 || b != 5 {
		t.Fatalf("the two objects hold %d and %d, want 10 and 5 (unchanged)", a, b)
	}
}

// TestWarmUpFindsAGitOpsObjectWithACopiedNameLabel: an object under a GitOps name that
// carries a copy of the label of the API's names is not among the objects under other
// names, and not under the API's name; the warming replica lists the user by spec.userID
// before it answers that there is no record, and a grant goes to that object instead of
// making a second one.
func TestWarmUpFindsAGitOpsObjectWithACopiedNameLabel(t *testing.T) {
	ctx := context.Background()
	user := account.UserID("user_WarmCopied1")
	obj := &creditsv1alpha1.UserCredits{
		ObjectMeta: metav1.ObjectMeta{Name: "warm-copied-from-git", Namespace: testNamespace, Labels: map[string]string{account.NameLabel: account.NameDerived}},
		Spec:       creditsv1alpha1.UserCreditsSpec{UserID: string(user), Credits: 100},
	}
	if err := k8sClient.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	store := newStore(t, credits.StoreOptions{
		Objects: unobserved{viewObjects{Objects: users, view: showing()}}, Synced: func() bool { return false },
		Foreign: viewObjects{Objects: users, view: notDerived}, ForeignSynced: func() bool { return true },
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Namespace: testNamespace, Log: logr.Discard(),
	})
	if n, err := store.Balance(ctx, user); err != nil || n != 100 {
		t.Fatalf("while warming up: %d %v, want 100", n, err)
	}
	if res, err := store.Apply(ctx, user, account.Operation{Kind: account.OpGrant, Amount: 5, IdempotencyKey: "cs_warm_copied"}); err != nil || res.Credits != 105 {
		t.Fatalf("a grant of 5 while warming up: %+v %v, want 105", res, err)
	}
	if got := storedBalance(t, obj.Name); got != 105 {
		t.Fatalf("the GitOps object holds %d, want 105", got)
	}
	var list creditsv1alpha1.UserCreditsList
	if err := k8sClient.List(ctx, &list); err != nil {
		t.Fatal(err)
	}
	for _, o := range list.Items {
		if o.Spec.UserID == string(user) && o.Name != obj.Name {
			t.Fatalf("a second object %s was made for the user", o.Name)
		}
	}
}

// TestWarmUpKeyedGrantOnAGitOpsObject: a warming replica finds a GitOps-named record among
// the objects under other names, a cache holding it in the informer's lighter form; the
// first keyed grant is decided on the record read whole, and applies.
func TestWarmUpKeyedGrantOnAGitOpsObject(t *testing.T) {
	ctx := context.Background()
	user := account.UserID("user_WarmGitOpsGrant1")
	obj := &creditsv1alpha1.UserCredits{
		ObjectMeta: metav1.ObjectMeta{Name: "warm-grant-from-git", Namespace: testNamespace, Annotations: map[string]string{account.AppliedGrantsAnnotation: fmt.Sprintf(
			`[{"k":"00112233445566778899aabbccddeeff","op":"grant","n":7,"r":7,"t":%d}]`, time.Now().Add(-time.Hour).Unix())}},
		Spec: creditsv1alpha1.UserCreditsSpec{UserID: string(user), Credits: 7},
	}
	if err := k8sClient.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 5*time.Second, func() error {
		if n := len(users.Lookup(string(user))); n != 1 {
			return fmt.Errorf("the index shows %d objects for the user", n)
		}
		return nil
	})
	store := newStore(t, credits.StoreOptions{
		Objects: unobserved{viewObjects{Objects: users, view: showing()}}, Synced: func() bool { return false },
		Foreign: viewObjects{Objects: users, view: notDerived}, ForeignSynced: func() bool { return true },
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Namespace: testNamespace, Log: logr.Discard(),
	})
	if res, err := store.Apply(ctx, user, account.Operation{Kind: account.OpGrant, Amount: 3, IdempotencyKey: "cs_warm_gitops"}); err != nil || res.Credits != 10 {
		t.Fatalf("the first keyed grant of 3 on 7 while warming up: %+v %v, want 10", res, err)
	}
}
