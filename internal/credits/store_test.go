package credits_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/credits"
	"github.com/gitread/usercredits-operator/test/framework"
)

// viewObjects is the index of users as a lagging cache would show it: each lookup passes
// through view, and the objects hide selects are never delivered to observers.
type viewObjects struct {
	credits.Objects
	view func([]*creditsv1alpha1.UserCredits) []*creditsv1alpha1.UserCredits
	hide func(*creditsv1alpha1.UserCredits) bool
}

func (v viewObjects) Lookup(userID string) []*creditsv1alpha1.UserCredits {
	objs := v.Objects.Lookup(userID)
	if v.view != nil {
		objs = v.view(objs)
	}
	return objs
}

func (v viewObjects) One(userID string) (*creditsv1alpha1.UserCredits, int) {
	objs := v.Lookup(userID)
	if len(objs) == 1 {
		return objs[0], 1
	}
	return nil, len(objs)
}

func (v viewObjects) Observe(f credits.Observer) {
	v.Objects.Observe(func(obj *creditsv1alpha1.UserCredits, deleted, shared bool) {
		if v.hide == nil || !v.hide(obj) {
			f(obj, deleted, shared)
		}
	})
}

// showing is a view that always shows objs.
func showing(objs ...*creditsv1alpha1.UserCredits) func([]*creditsv1alpha1.UserCredits) []*creditsv1alpha1.UserCredits {
	return func([]*creditsv1alpha1.UserCredits) []*creditsv1alpha1.UserCredits { return objs }
}

// countingClient counts the write errors the apiserver answered: conflicts are the writes
// refused because the object changed since the decision (a failed precondition).
type countingClient struct {
	client.Client
	conflicts, alreadyExists atomic.Int32
}

func (c *countingClient) count(err error) error {
	if credits.MayBeStale(err) {
		c.conflicts.Add(1)
	}
	if apierrors.IsAlreadyExists(err) {
		c.alreadyExists.Add(1)
	}
	return err
}

func (c *countingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	return c.count(c.Client.Create(ctx, obj, opts...))
}

func (c *countingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	return c.count(c.Client.Patch(ctx, obj, patch, opts...))
}

func storeWith(t testing.TB, view func([]*creditsv1alpha1.UserCredits) []*creditsv1alpha1.UserCredits) (*credits.Store, *countingClient) {
	writer := &countingClient{Client: mgr.GetClient()}
	return newStore(t, credits.StoreOptions{
		Objects: viewObjects{Objects: users, view: view}, Client: writer, APIReader: mgr.GetAPIReader(),
		Namespace: testNamespace, Log: logr.Discard(),
	}), writer
}

func createObject(t *testing.T, name, user string, balance int64) *creditsv1alpha1.UserCredits {
	t.Helper()
	obj := &creditsv1alpha1.UserCredits{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace},
		Spec:       creditsv1alpha1.UserCreditsSpec{UserID: user, Credits: balance},
	}
	if err := k8sClient.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

func storedBalance(t *testing.T, name string) int64 {
	t.Helper()
	obj := &creditsv1alpha1.UserCredits{}
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: testNamespace, Name: name}, obj); err != nil {
		t.Fatal(err)
	}
	return obj.Spec.Credits
}

func TestStoreCreateRaceFallsBackToUpdate(t *testing.T) {
	user := "user_Race1"
	name := account.ObjectNameForUser(user)
	createObject(t, name, user, 1) // another replica created it; this cache has not seen it
	store, writer := storeWith(t, showing())

	if res, err := store.Apply(context.Background(), account.UserID(user), account.Operation{Kind: account.OpSet, Amount: 9}); err != nil || res.Credits != 9 {
		t.Fatalf("Apply: %+v, %v", res, err)
	}
	if writer.alreadyExists.Load() != 1 {
		t.Fatalf("the create race was not exercised: %d AlreadyExists", writer.alreadyExists.Load())
	}
	if got := storedBalance(t, name); got != 9 {
		t.Fatalf("stored %d, want 9", got)
	}
}

func TestStoreNeverServesOrChangesAnInvalidRecord(t *testing.T) {
	ctx := context.Background()
	user := "user_Invalid1"
	obj := createObject(t, "invalid-1", user, 4)
	// What an object that bypassed the schema's minimum looks like in the cache.
	negative := obj.DeepCopy()
	negative.Spec.Credits = -3
	store, _ := storeWith(t, showing(negative))

	if n, err := store.Balance(ctx, account.UserID(user)); !errors.Is(err, account.ErrUntrusted) {
		t.Fatalf("Balance of an invalid record: %d, %v", n, err)
	}
	if _, err := store.Apply(ctx, account.UserID(user), account.Operation{Kind: account.OpSet, Amount: 10}); !errors.Is(err, account.ErrUntrusted) {
		t.Fatalf("Apply on an invalid record: %v", err)
	}
	if got := storedBalance(t, "invalid-1"); got != 4 {
		t.Fatalf("stored %d, want it untouched at 4", got)
	}
}

// lagging is the index as a cache that does not show the object called name until show
// is called (a watch that has fallen behind, then catches up).
type lagging struct {
	viewObjects
	shown *atomic.Bool
}

func laggingOn(name string) lagging {
	shown := &atomic.Bool{}
	hidden := func(o *creditsv1alpha1.UserCredits) bool { return o.Name == name && !shown.Load() }
	return lagging{shown: shown, viewObjects: viewObjects{Objects: users, hide: hidden, view: func(objs []*creditsv1alpha1.UserCredits) []*creditsv1alpha1.UserCredits {
		return slices.DeleteFunc(slices.Clone(objs), hidden)
	}}}
}

// TestWritesAreReadBackWhileTheCacheLags: a write is read back on this replica while its
// cache does not show it, the next write is decided on it, and once the object is deleted
// and the cache catches up, the user reads as the cache says (0), never an error.
func TestWritesAreReadBackWhileTheCacheLags(t *testing.T) {
	ctx := context.Background()
	user := "user_Lagging1"
	name := account.ObjectNameForUser(user)
	view := laggingOn(name)
	store := newStore(t, credits.StoreOptions{
		Objects: view, Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Namespace: testNamespace, Log: logr.Discard(),
	})
	if res, err := store.Apply(ctx, account.UserID(user), account.Operation{Kind: account.OpSet, Amount: 5}); err != nil || res.Credits != 5 {
		t.Fatalf("Apply: %+v, %v", res, err)
	}
	if n, err := store.Balance(ctx, account.UserID(user)); err != nil || n != 5 {
		t.Fatalf("read-your-writes while the cache lags: %d, %v", n, err)
	}
	if res, err := store.Apply(ctx, account.UserID(user), account.Operation{Kind: account.OpConsume, Amount: 2}); err != nil || res.Credits != 3 {
		t.Fatalf("the next write is decided on the write before it, not the lagging cache: %+v, %v", res, err)
	}
	view.shown.Store(true) // the watch catches up, and shows the deletion
	obj := &creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace}}
	if err := k8sClient.Delete(ctx, obj); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 5*time.Second, func() error {
		if n, err := store.Balance(ctx, account.UserID(user)); err != nil || n != 0 {
			return fmt.Errorf("after the deletion: %d, %v", n, err)
		}
		return nil
	})
}

// lostResponseClient applies the first write it is given, then reports that the answer
// never came, as when the request deadline passes after the apiserver applied the patch.
type lostResponseClient struct {
	client.Client
	lost atomic.Int32
}

func (c *lostResponseClient) lose(err error) error {
	if err == nil && c.lost.Add(1) == 1 {
		return fmt.Errorf("Patch: %w", context.DeadlineExceeded)
	}
	return err
}

func (c *lostResponseClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	return c.lose(c.Client.Create(ctx, obj, opts...))
}

func (c *lostResponseClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	return c.lose(c.Client.Patch(ctx, obj, patch, opts...))
}

// TestKeyedWriteWithALostAnswerIsResolved: when the outcome of a keyed write is unknown,
// the store finds out whether it was applied and answers the real result, exactly once.
func TestKeyedWriteWithALostAnswerIsResolved(t *testing.T) {
	ctx := context.Background()
	for _, first := range []string{"create", "patch"} {
		t.Run(first, func(t *testing.T) {
			user := "user_LostAnswer_" + first
			if first == "patch" {
				createObject(t, account.ObjectNameForUser(user), user, 10)
				framework.Eventually(t, 5*time.Second, func() error {
					return mgr.GetCache().Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: account.ObjectNameForUser(user)}, &creditsv1alpha1.UserCredits{})
				})
			}
			writer := &lostResponseClient{Client: mgr.GetClient()}
			store := newStore(t, credits.StoreOptions{Objects: users, Client: writer, APIReader: mgr.GetAPIReader(),
				Namespace: testNamespace, Log: logr.Discard()})
			base := map[string]int64{"create": 0, "patch": 10}[first]
			res, err := store.Apply(ctx, account.UserID(user), account.Operation{Kind: account.OpGrant, Amount: 7, IdempotencyKey: "cs_lost_" + first})
			if err != nil || res.Credits != base+7 {
				t.Fatalf("grant whose answer was lost: %+v, %v; want the real result %d", res, err, base+7)
			}
			if writer.lost.Load() < 1 {
				t.Fatal("no answer was lost: the test did not exercise anything")
			}
			if got := storedBalanceOf(t, user); got != base+7 {
				t.Fatalf("stored %d, want %d (applied exactly once)", got, base+7)
			}
		})
	}
}
