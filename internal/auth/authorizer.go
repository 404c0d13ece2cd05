package auth

import (
	"context"
	"fmt"
	"github.com/gitread/usercredits-operator/internal/expiring"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SubjectAccessReviewer creates SubjectAccessReviews (client-go's SubjectAccessReviewInterface).
type SubjectAccessReviewer interface {
	Create(ctx context.Context, review *authorizationv1.SubjectAccessReview, opts metav1.CreateOptions) (*authorizationv1.SubjectAccessReview, error)
}

// ResourceAuthorizer asks the cluster's authorizer (RBAC) whether a ServiceAccount may use a
// verb on one resource in one namespace. Decisions are cached briefly.
type ResourceAuthorizer struct {
	Reviews   SubjectAccessReviewer
	Namespace string
	Group     string
	Resource  string
	TTL       time.Duration
	now       func() time.Time
	cache     *expiring.Cache[string, bool]
}

// NewResourceAuthorizer returns an authorizer that reuses each decision for
// limits.ReuseBound and keeps up to limits.Decisions of them.
func NewResourceAuthorizer(reviews SubjectAccessReviewer, namespace, group, resource string, limits Limits) *ResourceAuthorizer {
	return &ResourceAuthorizer{Reviews: reviews, Namespace: namespace, Group: group, Resource: resource, TTL: limits.ReuseBound,
		now: time.Now, cache: expiring.NewCache[string, bool](limits.Decisions)}
}

// Allowed reports whether p may use verb. Errors are apiserver failures, not denials.
func (a *ResourceAuthorizer) Allowed(ctx context.Context, p Principal, verb string) (bool, error) {
	if p.Kind != KindServiceAccount {
		return false, nil
	}
	now := a.now()
	key := strings.Join([]string{p.Username, p.UID, verb}, "\x00")
	if allowed, ok := a.cache.Get(key, now); ok {
		return allowed, nil
	}
	extra := make(map[string]authorizationv1.ExtraValue, len(p.Extra))
	for k, v := range p.Extra {
		extra[k] = v
	}
	review, err := a.Reviews.Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: p.Username, UID: p.UID, Groups: p.Groups, Extra: extra,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: a.Namespace, Verb: verb, Group: a.Group, Resource: a.Resource},
	}}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("subject access review: %w", err)
	}
	a.cache.Put(key, review.Status.Allowed, now.Add(a.TTL), now)
	return review.Status.Allowed, nil
}
