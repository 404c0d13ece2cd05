package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TokenReviewer creates TokenReviews (client-go's TokenReviewInterface).
type TokenReviewer interface {
	Create(ctx context.Context, review *authenticationv1.TokenReview, opts metav1.CreateOptions) (*authenticationv1.TokenReview, error)
}

// ServiceAccountConfig configures the cluster's ServiceAccount tokens.
type ServiceAccountConfig struct {
	// ServiceAccountSettings name the issuers (resolved: never empty here) and audiences.
	ServiceAccountSettings
	// JWKS fetches the issuer's public keys (the apiserver serves them at /openid/v1/jwks).
	JWKS func(ctx context.Context) ([]byte, error)
	// Reviews checks, after the signature, that the token is still bound to a live
	// ServiceAccount (and pod or secret).
	Reviews TokenReviewer
}

// serviceAccountIssuer verifies ServiceAccount tokens: locally first (signature against the
// cluster's published keys, exp/nbf, audience), so that forged tokens never cost an
// apiserver call, then with a TokenReview for the same audiences.
type serviceAccountIssuer struct {
	issuers, audiences []string
	keys               keySource
	reviews            TokenReviewer
	limits             Limits
}

func newServiceAccountIssuer(cfg ServiceAccountConfig, limits Limits, now func() time.Time) (*serviceAccountIssuer, error) {
	if len(cfg.Issuers) == 0 || len(cfg.Audiences) == 0 || cfg.JWKS == nil || cfg.Reviews == nil {
		return nil, errors.New("ServiceAccount tokens need issuers, audiences, a JWKS source and TokenReview")
	}
	fetch := func(ctx context.Context) (map[string]verificationKey, error) {
		doc, err := cfg.JWKS(ctx)
		if err != nil {
			return nil, err
		}
		return parseJWKS(doc)
	}
	return &serviceAccountIssuer{issuers: cfg.Issuers, audiences: cfg.Audiences, keys: newKeySet(fetch, limits, now),
		reviews: cfg.Reviews, limits: limits}, nil
}

func (s *serviceAccountIssuer) verify(ctx context.Context, t *token, now time.Time) (Principal, time.Time, error) {
	k, err := s.keys.lookup(ctx, t.kid)
	if err != nil {
		return Principal{}, time.Time{}, err
	}
	if err := t.verify(k, now, s.limits.Leeway); err != nil {
		return Principal{}, time.Time{}, err
	}
	if !slices.ContainsFunc(t.claims.Audience, func(aud string) bool { return slices.Contains(s.audiences, aud) }) {
		return Principal{}, time.Time{}, fmt.Errorf("%w: token audiences %v, want one of %v", ErrUnauthenticated, []string(t.claims.Audience), s.audiences)
	}
	review, err := s.reviews.Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: t.raw, Audiences: s.audiences}}, metav1.CreateOptions{})
	if err != nil {
		// The caller's credentials may be fine; the cluster is not: not ErrUnauthenticated.
		return Principal{}, time.Time{}, fmt.Errorf("token review: %w", err)
	}
	user := review.Status.User
	switch {
	case !review.Status.Authenticated:
		return Principal{}, time.Time{}, fmt.Errorf("%w: token review: %s", ErrUnauthenticated, review.Status.Error)
	case !slices.ContainsFunc(review.Status.Audiences, func(aud string) bool { return slices.Contains(s.audiences, aud) }):
		return Principal{}, time.Time{}, fmt.Errorf("%w: token review audiences %v, want one of %v", ErrUnauthenticated, review.Status.Audiences, s.audiences)
	case !strings.HasPrefix(user.Username, "system:serviceaccount:"):
		return Principal{}, time.Time{}, fmt.Errorf("%w: %q is not a ServiceAccount", ErrUnauthenticated, user.Username)
	}
	extra := make(map[string][]string, len(user.Extra))
	for k, v := range user.Extra {
		extra[k] = v
	}
	p := Principal{Kind: KindServiceAccount, Username: user.Username, UID: user.UID, Groups: user.Groups, Extra: extra}
	return p, minTime(t.expiry(), now.Add(s.limits.ReuseBound)), nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
