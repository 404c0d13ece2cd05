package credits

import (
	"slices"
	"testing"

	toolscache "k8s.io/client-go/tools/cache"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

func ucObj(name, user, rv string) *creditsv1alpha1.UserCredits {
	o := &creditsv1alpha1.UserCredits{}
	o.Name, o.Spec.UserID, o.ResourceVersion = name, user, rv
	return o
}

func TestIndexTracksClaimsAndDuplicates(t *testing.T) {
	ix := NewIndex()
	type change struct {
		name            string
		deleted, shared bool
	}
	var seen []change
	ix.Observe(func(o *creditsv1alpha1.UserCredits, deleted, shared bool) {
		seen = append(seen, change{o.Name, deleted, shared})
	})

	a := ucObj("a", "user_1", "1")
	ix.put(a)
	if obj, n := ix.One("user_1"); obj != a || n != 1 {
		t.Fatalf("one claim: %v %d", obj, n)
	}
	a2 := ucObj("a", "user_1", "2")
	ix.update(a, a2) // a new version replaces the old in place
	if obj, _ := ix.One("user_1"); obj != a2 {
		t.Fatal("update did not replace the object")
	}
	b := ucObj("b", "user_1", "3")
	ix.put(b) // a duplicate
	if obj, n := ix.One("user_1"); obj != nil || n != 2 {
		t.Fatalf("two claims: %v %d", obj, n)
	}
	if names := ix.Names("user_1"); !slices.Equal(names, []string{"a", "b"}) {
		t.Fatalf("names %v", names)
	}
	ix.remove(toolscache.DeletedFinalStateUnknown{Key: "ns/b", Obj: b}) // the duplicate goes
	if obj, n := ix.One("user_1"); obj != a2 || n != 1 {
		t.Fatalf("after the duplicate was deleted: %v %d", obj, n)
	}
	ix.remove(a2)
	if _, n := ix.One("user_1"); n != 0 || len(ix.users)+len(ix.dups) != 0 {
		t.Fatalf("after every claim is gone: %d claims, %d+%d entries", n, len(ix.users), len(ix.dups))
	}
	want := []change{{"a", false, false}, {"a", false, false}, {"b", false, true}, {"b", true, true}, {"a", true, false}}
	if !slices.Equal(seen, want) {
		t.Fatalf("observers saw %v, want %v", seen, want)
	}
	ix.put(ucObj("c", "", "1")) // no user: not indexed
	if len(ix.users) != 0 {
		t.Fatal("an object without a user was indexed")
	}
}

func TestOverlayKeepsWritesUntilTheCacheShowsThem(t *testing.T) {
	o := newOverlay()
	written := ucObj("a", "u", "10")
	o.remember(written)
	if got := o.newest("u", ucObj("a", "u", "9")); got != written || !o.pending("u") {
		t.Fatal("a write newer than the cache was not preferred")
	}
	if got := o.newest("u", nil); got != written {
		t.Fatal("a write the cache does not show at all was not preferred")
	}
	newerCached := ucObj("a", "u", "12")
	if got := o.newest("u", newerCached); got != newerCached {
		t.Fatal("a cache newer than the write was not preferred")
	}
	o.remember(ucObj("a", "u", "8")) // an older answer never replaces a newer one
	o.observe(ucObj("a", "u", "9"), false, false)
	if !o.pending("u") {
		t.Fatal("forgotten when the cache showed an older version")
	}
	o.observe(ucObj("a", "u", "10"), false, false)
	if o.pending("u") {
		t.Fatal("kept after the cache showed it")
	}
	o.remember(ucObj("a", "u", "20"))
	o.observe(ucObj("a", "u", "15"), true, false)
	if o.pending("u") {
		t.Fatal("kept after its object was deleted")
	}
}

// withGitOpsKeys is obj in the cache's form, its ledger holding the CreditGrant key hashes.
func withGitOpsKeys(obj *creditsv1alpha1.UserCredits, hashes string) *creditsv1alpha1.UserCredits {
	obj.Annotations = map[string]string{account.GitOpsKeysAnnotation: hashes}
	return obj
}

// TestIndexFindsTheUsersHoldingACreditGrantKey: the index follows each object's CreditGrant
// keys through its versions and its deletion, and so does the overlay for this replica's
// writes.
func TestIndexFindsTheUsersHoldingACreditGrantKey(t *testing.T) {
	ix := NewIndex()
	a := withGitOpsKeys(ucObj("a", "user_1", "1"), "k1,")
	ix.put(a)
	ix.put(withGitOpsKeys(ucObj("b", "user_2", "2"), "k1,k2,"))
	if got := ix.GrantKeyUsers("k1"); len(got) != 2 {
		t.Fatalf("k1 held by %v, want both users", got)
	}
	a2 := withGitOpsKeys(ucObj("a", "user_1", "3"), "k3,")
	ix.update(a, a2)
	if got := ix.GrantKeyUsers("k1"); !slices.Equal(got, []string{"user_2"}) {
		t.Fatalf("after user_1's ledger let k1 go: %v", got)
	}
	if got := ix.GrantKeyUsers("k3"); !slices.Equal(got, []string{"user_1"}) {
		t.Fatalf("k3: %v", got)
	}
	ix.remove(toolscache.DeletedFinalStateUnknown{Key: "ns/b", Obj: ucObj("b", "user_2", "2")})
	ix.remove(a2)
	if len(ix.grantKeys.users)+len(ix.grantKeys.keys) != 0 {
		t.Fatalf("after every object is gone: %v %v", ix.grantKeys.users, ix.grantKeys.keys)
	}
	o := newOverlay()
	o.remember(withGitOpsKeys(ucObj("c", "user_3", "5"), "k9,"))
	if got := o.holding("k9"); !slices.Equal(got, []string{"user_3"}) || o.holding("k1") != nil {
		t.Fatalf("overlay: %v", got)
	}
}

// TestIndexFindsTheUsersOfAPayment: the index follows the PaymentIntents objects' lots
// name, through updates and deletions.
func TestIndexFindsTheUsersOfAPayment(t *testing.T) {
	ix := NewIndex()
	paying := func(name, user, rv string, pis ...string) *creditsv1alpha1.UserCredits {
		o := ucObj(name, user, rv)
		for i, pi := range pis {
			o.Spec.Lots = append(o.Spec.Lots, creditsv1alpha1.Lot{ID: "lot-" + string(rune('a'+i)), Payment: pi})
		}
		return o
	}
	a1 := paying("a", "user_1", "1", "pi_1", "pi_2")
	ix.put(a1)
	if got := ix.Payers("pi_2"); !slices.Equal(got, []string{"user_1"}) {
		t.Fatalf("pi_2: %v", got)
	}
	a2 := paying("a", "user_1", "2", "pi_2")
	ix.update(a1, a2)
	if got := ix.Payers("pi_1"); len(got) != 0 {
		t.Fatalf("a lot dropped by an update is still indexed: %v", got)
	}
	b := paying("b", "user_2", "3", "pi_2") // a hand edit: two users name one payment
	ix.put(b)
	if got := ix.Payers("pi_2"); !slices.Equal(got, []string{"user_1", "user_2"}) {
		t.Fatalf("pi_2 of two users: %v", got)
	}
	ix.remove(toolscache.DeletedFinalStateUnknown{Obj: b})
	ix.remove(a2)
	if got := ix.Payers("pi_2"); len(got) != 0 || len(ix.payers.byObject) != 0 || len(ix.payers.byPayment) != 0 {
		t.Fatalf("deleted objects are still indexed: %v %v", got, ix.payers)
	}
}

// TestIndexLookupIsASnapshot: the objects Lookup returned for a user two objects claim stay
// as they were while the informer changes the index (reads hold them outside its lock): a
// change or deletion of one of them used to shift them in the slice the reader held, which
// then showed a nil object (a panic in the write path) or one twice.
func TestIndexLookupIsASnapshot(t *testing.T) {
	ix := NewIndex()
	a, b, c := ucObj("a", "user_1", "1"), ucObj("b", "user_1", "2"), ucObj("c", "user_1", "3")
	ix.put(a)
	ix.put(b)
	ix.put(c)
	held := ix.Lookup("user_1")
	want := slices.Clone(held)
	if len(want) != 3 {
		t.Fatalf("three claims: %v", want)
	}
	ix.update(b, ucObj("b", "user_1", "4"))
	ix.remove(a)
	if !slices.Equal(held, want) {
		t.Errorf("a held lookup changed under its reader: %v, was %v", held, want)
	}
	if got := ix.Lookup("user_1"); len(got) != 2 || slices.Contains(got, nil) {
		t.Errorf("after the change the index shows %v, want b (new) and c", got)
	}
}
