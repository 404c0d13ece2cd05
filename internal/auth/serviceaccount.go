package auth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TokenReviewer creates TokenReviews (client-go's TokenReviewInterface).
type TokenReviewer interface {
	Create(ctx context.Context, review *authenticationv1.TokenReview, opts metav1.CreateOptions) (*authenticationv1.TokenReview, error)
}

// ServiceAccountVerifier authenticates Kubernetes ServiceAccount tokens with TokenReview.
// Results, rejections included, are cached briefly by token hash, never past the token's exp.
type ServiceAccountVerifier struct {
	reviews TokenReviewer
	ttl     time.Duration
	now     func() time.Time
	cache   *expiringCache[[sha256.Size]byte, reviewResult]
}

type reviewResult struct {
	principal Principal
	err       error
}

// NewServiceAccountVerifier returns a verifier that caches up to size results for ttl.
func NewServiceAccountVerifier(reviews TokenReviewer, ttl time.Duration, size int) *ServiceAccountVerifier {
	return &ServiceAccountVerifier{reviews: reviews, ttl: ttl, now: time.Now, cache: newExpiringCache[[sha256.Size]byte, reviewResult](size)}
}

// Verify reviews token. An apiserver failure is returned as is (not ErrUnauthenticated):
// the caller's credentials may be fine, the cluster is not.
func (v *ServiceAccountVerifier) Verify(ctx context.Context, token string) (Principal, error) {
	now := v.now()
	key := sha256.Sum256([]byte(token))
	if r, ok := v.cache.get(key, now); ok {
		return r.principal, r.err
	}
	review, err := v.reviews.Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return Principal{}, fmt.Errorf("token review: %w", err)
	}
	var r reviewResult
	user := review.Status.User
	switch {
	case !review.Status.Authenticated:
		r.err = fmt.Errorf("%w: token review: %s", ErrUnauthenticated, review.Status.Error)
	case !strings.HasPrefix(user.Username, "system:serviceaccount:"):
		r.err = fmt.Errorf("%w: %q is not a ServiceAccount", ErrUnauthenticated, user.Username)
	default:
		extra := make(map[string][]string, len(user.Extra))
		for k, vals := range user.Extra {
			extra[k] = vals
		}
		r.principal = Principal{Kind: KindServiceAccount, Username: user.Username, UID: user.UID, Groups: user.Groups, Extra: extra}
	}
	expires := now.Add(v.ttl)
	if exp, ok := unverifiedExpiry(token); ok && exp.Before(expires) {
		expires = exp
	}
	v.cache.put(key, r, expires, now)
	return r.principal, r.err
}
