package credits_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
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

func storeWith(view func([]*creditsv1alpha1.UserCredits) []*creditsv1alpha1.UserCredits) (*credits.Store, *countingClient) {
	writer := &countingClient{Client: mgr.GetClient()}
	return credits.NewStore(credits.StoreOptions{
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
	name := credits.ObjectNameForUser(user)
	createObject(t, name, user, 1) // another replica created it; this cache has not seen it
	store, writer := storeWith(showing())

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
	store, writer := storeWith(showing(stale))

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

// following is a view of the cache as it is.
func following(objs []*creditsv1alpha1.UserCredits) []*creditsv1alpha1.UserCredits { return objs }

// setThroughStore sets user's balance through a store that follows the cache and returns
// the object as stored, which a test's lagging cache can then show.
func setThroughStore(t *testing.T, user string, balance int64) *creditsv1alpha1.UserCredits {
	t.Helper()
	ctx := context.Background()
	store, _ := storeWith(following)
	if _, err := store.Apply(ctx, user, credits.Operation{Kind: credits.OpSet, Amount: balance}); err != nil {
		t.Fatal(err)
	}
	stored := &creditsv1alpha1.UserCredits{}
	key := client.ObjectKey{Namespace: testNamespace, Name: credits.ObjectNameForUser(user)}
	if err := k8sClient.Get(ctx, key, stored); err != nil {
		t.Fatal(err)
	}
	return stored
}

// applyOnStale applies op for user through a store whose cache still shows decidedOn, and
// checks that it answers want and that want is stored; it returns the store's client.
func applyOnStale(t *testing.T, user string, decidedOn *creditsv1alpha1.UserCredits, op credits.Operation, want int64) *countingClient {
	t.Helper()
	store, writer := storeWith(showing(decidedOn))
	if res, err := store.Apply(context.Background(), user, op); err != nil || res.Credits != want {
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
	writer := applyOnStale(t, user, decidedOn, credits.Operation{Kind: credits.OpConsume, Amount: 2}, 3) // a cache that has not seen the status write
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
	if writer := applyOnStale(t, user, decidedOn, credits.Operation{Kind: credits.OpConsume, Amount: 1}, 99); writer.conflicts.Load() < 1 {
		t.Fatal("no refused write: the write did not test the object's identity")
	}
}

// TestStoreWriteToADeletedObjectIsDecidedAgain: an object deleted between a cached
// decision and its write answers the patch 404; the store decides again on what the
// apiserver holds (no object), so a set creates the record instead of failing.
func TestStoreWriteToADeletedObjectIsDecidedAgain(t *testing.T) {
	user := "user_Deleted1"
	decidedOn := deletedBehindTheCache(t, user, 10)
	applyOnStale(t, user, decidedOn, credits.Operation{Kind: credits.OpSet, Amount: 4, IdempotencyKey: "after-delete"}, 4) // created again
}

// TestRefusalSeesAGrantMadeBehindItsBack: a user refused at 0 is given credits by kubectl
// (or a GitOps tool, or another replica) and consumes again at once, before this replica's
// informer has shown the change. The refusal budget (one confirmation read a second) is
// spent, so the consume must not be refused on the cache that has not caught up.
func TestRefusalSeesAGrantMadeBehindItsBack(t *testing.T) {
	ctx := context.Background()
	user := "user_Behind1"
	store, _ := storeWith(following)
	obj := &creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{Name: credits.ObjectNameForUser(user), Namespace: testNamespace}}
	consume := credits.Operation{Kind: credits.OpConsume, Amount: 1}
	for round := range 5 {
		if _, err := store.Apply(ctx, user, credits.Operation{Kind: credits.OpSet, Amount: 0}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Apply(ctx, user, consume); !errors.Is(err, credits.ErrInsufficientCredits) {
			t.Fatalf("round %d: consume at 0: %v, want insufficient credits", round, err)
		}
		if err := k8sClient.Patch(ctx, obj.DeepCopy(), client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"credits":10}}`))); err != nil {
			t.Fatal(err)
		}
		if res, err := store.Apply(ctx, user, consume); err != nil || res.Credits != 9 {
			t.Fatalf("round %d: consume right after a grant behind the API's back: %+v, %v (want 9 left)", round, res, err)
		}
	}
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
	store, writer := storeWith(showing(obj))
	if _, err := store.Apply(ctx, user, credits.Operation{Kind: credits.OpConsume, Amount: 1}); err == nil {
		t.Fatal("a write over the annotation limit succeeded")
	}
	if n := writer.conflicts.Load(); n != 1 {
		t.Fatalf("%d refused writes, want 1 (no retry once the read shows nothing moved)", n)
	}
	if got := storedBalance(t, "full-1"); got != 9 {
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
	store, _ := storeWith(showing(negative))

	if n, err := store.Balance(ctx, user); !errors.Is(err, credits.ErrUntrustedRecord) {
		t.Fatalf("Balance of an invalid record: %d, %v", n, err)
	}
	if _, err := store.Apply(ctx, user, credits.Operation{Kind: credits.OpSet, Amount: 10}); !errors.Is(err, credits.ErrUntrustedRecord) {
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
	name := credits.ObjectNameForUser(user)
	view := laggingOn(name)
	store := credits.NewStore(credits.StoreOptions{
		Objects: view, Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Namespace: testNamespace, Log: logr.Discard(),
	})
	if res, err := store.Apply(ctx, user, credits.Operation{Kind: credits.OpSet, Amount: 5}); err != nil || res.Credits != 5 {
		t.Fatalf("Apply: %+v, %v", res, err)
	}
	if n, err := store.Balance(ctx, user); err != nil || n != 5 {
		t.Fatalf("read-your-writes while the cache lags: %d, %v", n, err)
	}
	if res, err := store.Apply(ctx, user, credits.Operation{Kind: credits.OpConsume, Amount: 2}); err != nil || res.Credits != 3 {
		t.Fatalf("the next write is decided on the write before it, not the lagging cache: %+v, %v", res, err)
	}
	view.shown.Store(true) // the watch catches up, and shows the deletion
	obj := &creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace}}
	if err := k8sClient.Delete(ctx, obj); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 5*time.Second, func() error {
		if n, err := store.Balance(ctx, user); err != nil || n != 0 {
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
				createObject(t, credits.ObjectNameForUser(user), user, 10)
				framework.Eventually(t, 5*time.Second, func() error {
					return mgr.GetCache().Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: credits.ObjectNameForUser(user)}, &creditsv1alpha1.UserCredits{})
				})
			}
			writer := &lostResponseClient{Client: mgr.GetClient()}
			store := credits.NewStore(credits.StoreOptions{Objects: users, Client: writer, APIReader: mgr.GetAPIReader(),
				Namespace: testNamespace, Log: logr.Discard()})
			base := map[string]int64{"create": 0, "patch": 10}[first]
			res, err := store.Apply(ctx, user, credits.Operation{Kind: credits.OpGrant, Amount: 7, IdempotencyKey: "cs_lost_" + first})
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
// the index does not show is read at the apiserver once: by the API's name for it (a GET),
// and only when there is no such object by the spec.userID field selector, which finds an
// object a GitOps tool named; after the sync, the index alone answers.
func TestReadThroughBeforeTheIndexHasSynced(t *testing.T) {
	ctx := context.Background()
	createObject(t, "warm-from-git", "user_Warm1", 7) // a GitOps tool's name
	createObject(t, credits.ObjectNameForUser("user_Warm2"), "user_Warm2", 3)
	reader := &countingReader{Reader: mgr.GetAPIReader()}
	synced := &atomic.Bool{}
	store := credits.NewStore(credits.StoreOptions{
		Objects: viewObjects{Objects: users, view: showing()}, Synced: synced.Load, // an index that has shown nothing yet
		Client: mgr.GetClient(), APIReader: reader, Namespace: testNamespace, Log: logr.Discard(),
	})
	for user, want := range map[string]int64{"user_Warm1": 7, "user_Warm2": 3, "user_WarmNone": 0} {
		if n, err := store.Balance(ctx, user); err != nil || n != want {
			t.Fatalf("%s before the sync: %d %v, want %d", user, n, err, want)
		}
	}
	if gets, lists := reader.gets.Load(), reader.lists.Load(); gets != 3 || lists != 2 {
		t.Fatalf("3 users cost %d GETs and %d lists, want 3 and 2 (none for the API-named object)", gets, lists)
	}
	if n, _ := store.Balance(ctx, "user_Warm1"); n != 7 || reader.gets.Load()+reader.lists.Load() != 5 {
		t.Fatalf("a second read of a found user: %d, %d reads in all (want no new one)", n, reader.gets.Load()+reader.lists.Load())
	}
	if res, err := store.Apply(ctx, "user_Warm1", credits.Operation{Kind: credits.OpConsume, Amount: 2}); err != nil || res.Credits != 5 {
		t.Fatalf("consume before the sync: %+v %v", res, err)
	}
	if got := storedBalance(t, "warm-from-git"); got != 5 {
		t.Fatalf("the GitOps-named object holds %d, want 5", got)
	}
	err := k8sClient.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: credits.ObjectNameForUser("user_Warm1")}, &creditsv1alpha1.UserCredits{})
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
	store := credits.NewStore(credits.StoreOptions{
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
			if n, err := store.Balance(ctx, fmt.Sprintf("user_Budget%d", i)); err != nil || n != 0 {
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
