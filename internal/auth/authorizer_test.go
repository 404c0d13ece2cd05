package auth

import (
	"context"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sync/atomic"
	"testing"
)

// fakeAccessReviews allows the verbs listed per user.
type fakeAccessReviews struct {
	allowed map[string]bool // user/verb
	calls   atomic.Int32
}

func (f *fakeAccessReviews) Create(_ context.Context, sar *authorizationv1.SubjectAccessReview, _ metav1.CreateOptions) (*authorizationv1.SubjectAccessReview, error) {
	f.calls.Add(1)
	out := sar.DeepCopy()
	ra := sar.Spec.ResourceAttributes
	out.Status.Allowed = ra.Group == "credits.gitread.dev" && ra.Resource == "usercredits" && ra.Namespace == "credits" &&
		f.allowed[sar.Spec.User+"/"+ra.Verb]
	return out, nil
}

func TestResourceAuthorizer(t *testing.T) {
	reviews := &fakeAccessReviews{allowed: map[string]bool{worker + "/consume": true}}
	a := NewResourceAuthorizer(reviews, "credits", "credits.gitread.dev", "usercredits", DefaultLimits())
	p := Principal{Kind: KindServiceAccount, Username: worker}
	for verb, want := range map[string]bool{"consume": true, "grant": false, "get": false} {
		for range 2 {
			if got, err := a.Allowed(context.Background(), p, verb); err != nil || got != want {
				t.Errorf("%s: %v %v, want %v", verb, got, err, want)
			}
		}
	}
	if n := reviews.calls.Load(); n != 3 {
		t.Fatalf("%d SubjectAccessReviews for 3 distinct questions asked twice, want 3", n)
	}
	if ok, _ := a.Allowed(context.Background(), Principal{Kind: KindClerkUser, UserID: "u"}, "consume"); ok {
		t.Fatal("a Clerk user is never authorized through RBAC")
	}
}
