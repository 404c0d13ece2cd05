package credits_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/credits"
	"github.com/gitread/usercredits-operator/test/framework"
)

// countingReader counts the reads it sends to the apiserver.
type countingReader struct {
	client.Reader
	gets, lists atomic.Int32
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.gets.Add(1)
	return c.Reader.Get(ctx, key, obj, opts...)
}

func (c *countingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	c.lists.Add(1)
	return c.Reader.List(ctx, list, opts...)
}

// TestReadThroughBeforeTheIndexHasSynced: until the informer's first list is in, a user
// the index does not show is read at the apiserver once, by the spec.userID field selector,
// which finds an object under any name (a GitOps tool's too) and would find a second one;
// after the sync, the index alone answers.
func TestReadThroughBeforeTheIndexHasSynced(t *testing.T) {
	ctx := context.Background()
	createObject(t, "warm-from-git", "user_Warm1", 7) // a GitOps tool's name
	createObject(t, account.ObjectNameForUser("user_Warm2"), "user_Warm2", 3)
	reader := &countingReader{Reader: mgr.GetAPIReader()}
	synced := &atomic.Bool{}
	store := newStore(t, credits.StoreOptions{
		Objects: viewObjects{Objects: users, view: showing()}, Synced: synced.Load, // an index that has shown nothing yet
		Client: mgr.GetClient(), APIReader: reader, Namespace: testNamespace, Log: logr.Discard(),
	})
	for user, want := range map[string]int64{"user_Warm1": 7, "user_Warm2": 3, "user_WarmNone": 0} {
		if n, err := store.Balance(ctx, account.UserID(user)); err != nil || n != want {
			t.Fatalf("%s before the sync: %d %v, want %d", user, n, err, want)
		}
	}
	if gets, lists := reader.gets.Load(), reader.lists.Load(); gets != 0 || lists != 3 {
		t.Fatalf("3 users cost %d GETs and %d lists, want one list each", gets, lists)
	}
	if n, _ := store.Balance(ctx, "user_Warm1"); n != 7 || reader.gets.Load()+reader.lists.Load() != 3 {
		t.Fatalf("a second read of a found user: %d, %d reads in all (want no new one)", n, reader.gets.Load()+reader.lists.Load())
	}
	if res, err := store.Apply(ctx, "user_Warm1", account.Operation{Kind: account.OpConsume, Amount: 2}); err != nil || res.Credits != 5 {
		t.Fatalf("consume before the sync: %+v %v", res, err)
	}
	if got := storedBalance(t, "warm-from-git"); got != 5 {
		t.Fatalf("the GitOps-named object holds %d, want 5", got)
	}
	err := k8sClient.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: account.ObjectNameForUser("user_Warm1")}, &creditsv1alpha1.UserCredits{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("a second object was created for a user the index did not show yet: %v", err)
	}
	synced.Store(true)
	before := reader.gets.Load() + reader.lists.Load()
	if n, err := store.Balance(ctx, "user_WarmNone2"); err != nil || n != 0 || reader.gets.Load()+reader.lists.Load() != before {
		t.Fatalf("after the sync an unknown user is 0 from the index alone: %d %v, %d reads", n, err, reader.gets.Load()+reader.lists.Load()-before)
	}
}

// TestWarmUpListsAreBudgeted: users with no record, arriving before the index has synced,
// cost the apiserver at most the warm-up budget of field-selector lists (each one scans the
// namespace); the others wait for the index and are answered from it.
func TestWarmUpListsAreBudgeted(t *testing.T) {
	reader := &countingReader{Reader: mgr.GetAPIReader()}
	synced := &atomic.Bool{}
	store := newStore(t, credits.StoreOptions{
		Objects: viewObjects{Objects: users, view: showing()}, Synced: synced.Load,
		Client: mgr.GetClient(), APIReader: reader, Namespace: testNamespace, Log: logr.Discard(),
	})
	const newUsers = 40
	var wg sync.WaitGroup
	start := time.Now()
	for i := range newUsers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if n, err := store.Balance(ctx, account.UserID(fmt.Sprintf("user_Budget%d", i))); err != nil || n != 0 {
				t.Errorf("user %d: %d %v", i, n, err)
			}
		})
	}
	time.Sleep(time.Second)
	synced.Store(true)
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	// The budget: a burst of 10, then 5 a second.
	if lists := reader.lists.Load(); float64(lists) > 10+5*elapsed+1 || lists < 10 {
		t.Fatalf("%d users with no record cost %d lists in %.1fs; the budget allows 10 + 5/s", newUsers, lists, elapsed)
	}
	t.Logf("%d users with no record before the sync: %d GETs, %d lists in %.1fs", newUsers, reader.gets.Load(), reader.lists.Load(), elapsed)
}

// notDerived is a view of the index holding only the objects without account.NameLabel:
// what the operator's cache of foreign names holds.
func notDerived(objs []*creditsv1alpha1.UserCredits) []*creditsv1alpha1.UserCredits {
	return slices.DeleteFunc(slices.Clone(objs), func(o *creditsv1alpha1.UserCredits) bool {
		return o.Labels[account.NameLabel] == account.NameDerived
	})
}

// TestWarmUpReadsByNameAndForeignNames: with the objects under foreign names known (a
// GitOps tool's), a warming replica reads a user by the API's name alone (a GET, no list),
// serves a GitOps-named record, and refuses a user two objects claim, each at one read; a
// user neither finds is confirmed to have no record by one list by spec.userID (the
// census trusts a label that a GitOps manifest may have copied).
func TestWarmUpReadsByNameAndForeignNames(t *testing.T) {
	ctx := context.Background()
	createObject(t, "warmf-from-git", "user_WarmF1", 7)
	createObject(t, account.ObjectNameForUser("user_WarmF2"), "user_WarmF2", 3)
	createObject(t, account.ObjectNameForUser("user_WarmF3"), "user_WarmF3", 10)
	createObject(t, "warmf-twice-from-git", "user_WarmF3", 5)
	framework.Eventually(t, 5*time.Second, func() error {
		if n := len(users.Lookup("user_WarmF3")); n != 2 {
			return fmt.Errorf("the index shows %d objects for user_WarmF3", n)
		}
		return nil
	})
	reader := &countingReader{Reader: mgr.GetAPIReader()}
	store := newStore(t, credits.StoreOptions{
		Objects: viewObjects{Objects: users, view: showing()}, Synced: func() bool { return false },
		Foreign: viewObjects{Objects: users, view: notDerived}, ForeignSynced: func() bool { return true },
		Client: mgr.GetClient(), APIReader: reader, Namespace: testNamespace, Log: logr.Discard(),
	})
	for range 3 { // the second and third reads are answered from memory
		for user, want := range map[account.UserID]int64{"user_WarmF1": 7, "user_WarmF2": 3, "user_WarmFNone": 0} {
			if n, err := store.Balance(ctx, user); err != nil || n != want {
				t.Fatalf("%s while warming up: %d %v, want %d", user, n, err, want)
			}
		}
		if n, err := store.Balance(ctx, "user_WarmF3"); !errors.Is(err, account.ErrUntrusted) {
			t.Fatalf("a user two objects claim while warming up: %d %v, want ErrUntrusted", n, err)
		}
		if _, err := store.Apply(ctx, "user_WarmF3", account.Operation{Kind: account.OpConsume, Amount: 1}); !errors.Is(err, account.ErrUntrusted) {
			t.Fatalf("a consume of a user two objects claim while warming up: %v, want ErrUntrusted", err)
		}
	}
	if gets, lists := reader.gets.Load(), reader.lists.Load(); gets != 4 || lists != 1 {
		t.Fatalf("4 users read 3 times cost %d GETs and %d lists, want one GET each and one list (the user with no record)", gets, lists)
	}
	if got := storedBalance(t, account.ObjectNameForUser("user_WarmF3")); got != 10 {
		t.Fatalf("the contested object holds %d, want 10", got)
	}
}
