package credits

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

func TestCacheTransformDigestsGrantKeys(t *testing.T) {
	now := time.Now()
	u := &user{}
	for i := range 5 {
		if _, err := u.do(Operation{Kind: OpGrant, Amount: 1, IdempotencyKey: fmt.Sprint("cs_", i)}, now); err != nil {
			t.Fatal(err)
		}
	}
	grants := u.ann[AppliedGrantsAnnotation]
	obj := &creditsv1alpha1.UserCredits{}
	obj.Annotations = map[string]string{AppliedGrantsAnnotation: grants, AppliedRequestsAnnotation: "[]"}
	obj.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "x"}}
	out, err := CacheTransform(obj)
	if err != nil {
		t.Fatal(err)
	}
	cached := out.(*creditsv1alpha1.UserCredits)
	if cached.ManagedFields != nil || cached.Annotations[AppliedGrantsAnnotation] != "" || cached.Annotations[AppliedRequestsAnnotation] != "[]" {
		t.Fatalf("cached object: %+v", cached.ObjectMeta)
	}
	digest := cached.Annotations[GrantKeyDigestAnnotation]
	if len(digest) != 5*(grantDigestHex+1) || len(digest) >= len(grants)/3 {
		t.Fatalf("digest %q (%d bytes for %d bytes of records)", digest, len(digest), len(grants))
	}
	for _, c := range []struct {
		op   Operation
		want bool
	}{
		{Operation{Kind: OpGrant, Amount: 1, IdempotencyKey: "cs_new"}, true}, // a grant writes all records
		{Operation{Kind: OpConsume, Amount: 1, IdempotencyKey: "cs_3"}, true}, // a grant's key: a 409 to decide
		{Operation{Kind: OpConsume, Amount: 1, IdempotencyKey: "gen-1"}, false},
		{Operation{Kind: OpConsume, Amount: 1}, false},
		{Operation{Kind: OpSet, Amount: 1, IdempotencyKey: "cs_0"}, true},
	} {
		if got := needsFreshRead(cached, c.op); got != c.want {
			t.Errorf("needsFreshRead(%+v) = %v, want %v", c.op, got, c.want)
		}
	}
	other := &metav1.PartialObjectMetadata{}
	if out, _ := CacheTransform(other); out != other {
		t.Fatal("other objects must pass through")
	}
}

func userCredits(annotations map[string]string) *creditsv1alpha1.UserCredits {
	obj := &creditsv1alpha1.UserCredits{}
	obj.Annotations = annotations
	return obj
}

func TestCacheTransformKeepsOnlyTheHistoryChunkBeingFilled(t *testing.T) {
	u := &user{}
	now := time.Now()
	for range 35 {
		if _, err := u.do(Operation{Kind: OpGrant, Amount: 1}, now); err != nil {
			t.Fatal(err)
		}
	}
	cached := cachedCopy(u.ann)
	var chunks []string
	for k := range cached {
		if k != HistorySeqAnnotation && len(k) > len(historyChunkPrefix) && k[:len(historyChunkPrefix)] == historyChunkPrefix {
			chunks = append(chunks, k)
		}
	}
	if len(chunks) != 1 || chunks[0] != HistoryChunkAnnotation(3) || cached[HistorySeqAnnotation] != "35" {
		t.Fatalf("cached history annotations %v (seq %s), want only chunk 3", chunks, cached[HistorySeqAnnotation])
	}
}

// TestCacheTransformKeepsOnlyWhatDecisionsRead: a GitOps tool's annotations and a
// client-side kubectl apply's copy of the object stay out of the cache; the map stays
// non-nil so a write never takes the object for one without annotations.
func TestCacheTransformKeepsOnlyWhatDecisionsRead(t *testing.T) {
	in := userCredits(map[string]string{
		"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 4096),
		"argocd.argoproj.io/tracking-id":                   "app:credits.gitread.dev/UserCredits:ns/alice",
		AppliedRequestsAnnotation:                          "[]",
		ClosedReservationsAnnotation:                       "r1:c:1",
	})
	out, err := CacheTransform(in)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*creditsv1alpha1.UserCredits).Annotations
	want := map[string]string{AppliedRequestsAnnotation: "[]", ClosedReservationsAnnotation: "r1:c:1"}
	if !maps.Equal(got, want) {
		t.Fatalf("cached annotations %v, want %v", got, want)
	}
	out, _ = CacheTransform(userCredits(map[string]string{"argocd.argoproj.io/tracking-id": "x"}))
	if a := out.(*creditsv1alpha1.UserCredits).Annotations; a == nil || len(a) != 0 {
		t.Fatalf("an object with only foreign annotations is cached with %#v, want an empty map", a)
	}
}
