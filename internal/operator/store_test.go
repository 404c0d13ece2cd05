package operator_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/credits"
)

// viewCache is the manager's cache with List answered by view, to stage the moments a real
// cache lags behind the apiserver.
type viewCache struct {
	client.Reader
	view func(*creditsv1alpha1.UserCreditsList)
}

func (v viewCache) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if err := v.Reader.List(ctx, list, opts...); err != nil {
		return err
	}
	v.view(list.(*creditsv1alpha1.UserCreditsList))
	return nil
}

// countingClient counts the write errors the apiserver answered.
type countingClient struct {
	client.Client
	conflicts, alreadyExists atomic.Int32
}

func (c *countingClient) count(err error) error {
	if apierrors.IsConflict(err) {
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

func storeWith(view func(*creditsv1alpha1.UserCreditsList)) (*credits.Store, *countingClient) {
	writer := &countingClient{Client: mgr.GetClient()}
	return credits.NewStore(credits.StoreOptions{
		Cache: viewCache{Reader: mgr.GetCache(), view: view}, Client: writer, APIReader: mgr.GetAPIReader(),
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
	name := credits.ObjectNameForUser(user)
	createObject(t, name, user, 1) // another replica created it; this cache has not seen it
	store, writer := storeWith(func(l *creditsv1alpha1.UserCreditsList) { l.Items = nil })

	if res, err := store.Apply(context.Background(), user, credits.Operation{Kind: credits.OpSet, Amount: 9}); err != nil || res.Credits != 9 {
		t.Fatalf("Apply: %+v, %v", res, err)
	}
	if writer.alreadyExists.Load() != 1 {
		t.Fatalf("the create race was not exercised: %d AlreadyExists", writer.alreadyExists.Load())
	}
	if got := storedBalance(t, name); got != 9 {
		t.Fatalf("stored %d, want 9", got)
	}
}

func TestStoreRetriesConflictsFromAStaleCache(t *testing.T) {
	ctx := context.Background()
	user := "user_Stale1"
	stale := createObject(t, "stale-1", user, 1).DeepCopy()
	// Another writer moves the object on; this cache still shows the old resourceVersion.
	if err := k8sClient.Patch(ctx, stale.DeepCopy(), client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"credits":2}}`))); err != nil {
		t.Fatal(err)
	}
	store, writer := storeWith(func(l *creditsv1alpha1.UserCreditsList) { l.Items = []creditsv1alpha1.UserCredits{*stale} })

	if res, err := store.Apply(ctx, user, credits.Operation{Kind: credits.OpSet, Amount: 5}); err != nil || res.Credits != 5 {
		t.Fatalf("Apply: %+v, %v", res, err)
	}
	if writer.conflicts.Load() < 1 {
		t.Fatal("no conflict was exercised: the write did not carry the stale resourceVersion")
	}
	if got := storedBalance(t, "stale-1"); got != 5 {
		t.Fatalf("stored %d, want 5", got)
	}
}

func TestStoreNeverServesOrChangesAnInvalidRecord(t *testing.T) {
	ctx := context.Background()
	user := "user_Invalid1"
	obj := createObject(t, "invalid-1", user, 4)
	// What an object that bypassed the schema's minimum looks like in the cache.
	negative := obj.DeepCopy()
	negative.Spec.Credits = -3
	store, _ := storeWith(func(l *creditsv1alpha1.UserCreditsList) { l.Items = []creditsv1alpha1.UserCredits{*negative} })

	if n, err := store.Balance(ctx, user); !errors.Is(err, credits.ErrConflictingRecords) {
		t.Fatalf("Balance of an invalid record: %d, %v", n, err)
	}
	if _, err := store.Apply(ctx, user, credits.Operation{Kind: credits.OpSet, Amount: 10}); !errors.Is(err, credits.ErrConflictingRecords) {
		t.Fatalf("Apply on an invalid record: %v", err)
	}
	if got := storedBalance(t, "invalid-1"); got != 4 {
		t.Fatalf("stored %d, want it untouched at 4", got)
	}
}
