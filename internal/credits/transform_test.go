package credits

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

func TestCacheTransformDigestsGrantKeys(t *testing.T) {
	now := time.Now()
	var l ledgers
	for i := range 5 {
		d, err := decide(int64(i), l, Operation{Kind: OpGrant, Amount: 1, IdempotencyKey: fmt.Sprint("cs_", i)}, now, DefaultGrantKeyRetention)
		if err != nil {
			t.Fatal(err)
		}
		l.grants = d.ledgers.grants
	}
	obj := &creditsv1alpha1.UserCredits{}
	obj.Annotations = map[string]string{AppliedGrantsAnnotation: l.grants, AppliedRequestsAnnotation: "[]"}
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
	if len(digest) != 5*(grantDigestHex+1) || len(digest) >= len(l.grants)/3 {
		t.Fatalf("digest %q (%d bytes for %d bytes of records)", digest, len(digest), len(l.grants))
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
		if got := needsGrantRecords(cached, c.op); got != c.want {
			t.Errorf("needsGrantRecords(%+v) = %v, want %v", c.op, got, c.want)
		}
	}
	other := &metav1.PartialObjectMetadata{}
	if out, _ := CacheTransform(other); out != other {
		t.Fatal("other objects must pass through")
	}
}
