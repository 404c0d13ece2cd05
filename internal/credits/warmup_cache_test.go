package credits_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/credits"
)

// laggingWatchCache is the apiserver as seen while its watch cache lags behind etcd: a GET
// with resourceVersion 0 (answered from that cache) returns the state recorded in behind,
// when there is one; every other read goes to the apiserver as sent.
type laggingWatchCache struct {
	client.Reader
	mu                   sync.Mutex
	behind               map[client.ObjectKey]*creditsv1alpha1.UserCredits
	fromCache, fromStore atomic.Int32
}

func (l *laggingWatchCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	var o client.GetOptions
	o.ApplyOptions(opts)
	if o.Raw == nil || o.Raw.ResourceVersion != "0" {
		l.fromStore.Add(1)
		return l.Reader.Get(ctx, key, obj, opts...)
	}
	l.fromCache.Add(1)
	l.mu.Lock()
	old := l.behind[key]
	l.mu.Unlock()
	if uc, ok := obj.(*creditsv1alpha1.UserCredits); ok && old != nil {
		old.DeepCopyInto(uc)
		return nil
	}
	return l.Reader.Get(ctx, key, obj, opts...)
}

// TestWarmUpReadsFromTheWatchCacheAndDecidesOnEtcd: a warming replica reads a user's
// balance by name from the apiserver's watch cache (no etcd read: the informer's list keeps
// the apiserver busy enough), at one GET, and serves it as fresh as that cache is; a write
// decided on that record is not trusted: a refusal is confirmed from etcd, and a consume
// applies to the balance etcd holds, never to the lagging one.
func TestWarmUpReadsFromTheWatchCacheAndDecidesOnEtcd(t *testing.T) {
	ctx := context.Background()
	reader := &laggingWatchCache{Reader: mgr.GetAPIReader(), behind: map[client.ObjectKey]*creditsv1alpha1.UserCredits{}}
	// Two users hold 50 credits in etcd; the watch cache still shows their 5 of before
	// (another replica's grant it has not caught up with).
	users2 := []account.UserID{"user_WarmCache1", "user_WarmCache2"}
	for _, user := range users2 {
		key := client.ObjectKey{Namespace: testNamespace, Name: account.ObjectNameForUser(string(user))}
		obj := createObject(t, key.Name, string(user), 5)
		reader.behind[key] = obj.DeepCopy()
		obj.Spec.Credits = 50
		if err := k8sClient.Update(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	store := newStore(t, credits.StoreOptions{
		Objects: viewObjects{Objects: users, view: showing()}, Synced: func() bool { return false },
		Foreign: viewObjects{Objects: users, view: showing()}, ForeignSynced: func() bool { return true },
		Client: mgr.GetClient(), APIReader: reader, Namespace: testNamespace, Log: logr.Discard(),
	})
	for _, user := range users2 {
		for range 3 {
			if n, err := store.Balance(ctx, user); err != nil || n != 5 {
				t.Fatalf("%s's balance while warming up: %d %v, want 5 (the watch cache's state)", user, n, err)
			}
		}
	}
	if c, s := reader.fromCache.Load(), reader.fromStore.Load(); c != 2 || s != 0 {
		t.Fatalf("2 users read 3 times: %d GETs from the watch cache, %d from etcd; want one each from the watch cache", c, s)
	}
	// A consume the lagging record allows is written with what it read tested: the write
	// is refused, and the consume applied to the balance etcd holds.
	if res, err := store.Apply(ctx, users2[0], account.Operation{Kind: account.OpConsume, Amount: 2}); err != nil || res.Credits != 48 {
		t.Fatalf("consume 2, decided first on the lagging record of 5: %+v %v, want 48 left of 50", res, err)
	}
	// A refusal decided on the lagging record is confirmed from etcd.
	if res, err := store.Apply(ctx, users2[1], account.Operation{Kind: account.OpConsume, Amount: 20}); err != nil || res.Credits != 30 {
		t.Fatalf("consume 20, refused on the lagging record of 5: %+v %v, want 30 left of 50", res, err)
	}
	if res, err := store.Apply(ctx, users2[1], account.Operation{Kind: account.OpConsume, Amount: 31}); !errors.Is(err, account.ErrInsufficientCredits) || res.Credits != 30 {
		t.Fatalf("consume 31 of 30: %+v %v, want refused at 30", res, err)
	}
	for user, want := range map[account.UserID]int64{users2[0]: 48, users2[1]: 30} {
		if got := storedBalanceOf(t, string(user)); got != want {
			t.Fatalf("%s stored %d, want %d", user, got, want)
		}
	}

	// A record the watch cache does not show yet (just created) is looked for by
	// spec.userID, from etcd, which finds it.
	late := account.UserID("user_WarmCache3")
	lateKey := client.ObjectKey{Namespace: testNamespace, Name: account.ObjectNameForUser(string(late))}
	createObject(t, lateKey.Name, string(late), 9)
	store = newStore(t, credits.StoreOptions{
		Objects: viewObjects{Objects: users, view: showing()}, Synced: func() bool { return false },
		Foreign: viewObjects{Objects: users, view: showing()}, ForeignSynced: func() bool { return true },
		Client: mgr.GetClient(), APIReader: &laggingNotFound{laggingWatchCache: reader, missing: lateKey}, Namespace: testNamespace, Log: logr.Discard(),
	})
	if n, err := store.Balance(ctx, late); err != nil || n != 9 {
		t.Fatalf("a record the watch cache does not show yet: %d %v, want 9 (found by spec.userID)", n, err)
	}
}

// laggingNotFound is laggingWatchCache where the object at missing is not in the watch
// cache yet (just created).
type laggingNotFound struct {
	*laggingWatchCache
	missing client.ObjectKey
}

func (l *laggingNotFound) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	var o client.GetOptions
	o.ApplyOptions(opts)
	if key == l.missing && o.Raw != nil && o.Raw.ResourceVersion == "0" {
		return apierrors.NewNotFound(schema.GroupResource{Group: creditsv1alpha1.GroupVersion.Group, Resource: "usercredits"}, key.Name)
	}
	return l.laggingWatchCache.Get(ctx, key, obj, opts...)
}
