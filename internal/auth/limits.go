package auth

import "time"

// Limits are every size and lifetime of authentication and authorization, in one place.
type Limits struct {
	// AcceptedTokens bounds the one cache of accepted tokens (keyed by SHA-256). Rejected
	// tokens are never cached, so a flood of forged tokens cannot evict a real caller.
	AcceptedTokens int
	// ReuseBound is the longest this operator reuses a ServiceAccount token's TokenReview or
	// an RBAC decision (SubjectAccessReview). Clerk session tokens are reused until their exp
	// (about a minute).
	ReuseBound time.Duration
	// APIServerTokenCache is how long kube-apiserver itself reuses a successful token
	// authentication (its built-in token cache, 10 s): a TokenReview of a token it accepted
	// within that time, for any client, is answered from it, even if the ServiceAccount was
	// deleted since. It is not this operator's to set; it counts in TokenRevocationBound.
	APIServerTokenCache time.Duration
	// Decisions bounds the cache of SubjectAccessReview answers.
	Decisions int
	// KeyRefetchInterval is the least time between two fetches of one issuer's keys, so a
	// token with an unknown kid cannot turn into a fetch per request.
	KeyRefetchInterval time.Duration
	// KeyFetchTimeout bounds one fetch of an issuer's keys.
	KeyFetchTimeout time.Duration
	// Leeway tolerates clock skew on exp, nbf and iat.
	Leeway time.Duration
}

// DefaultLimits are the limits the operator runs with.
func DefaultLimits() Limits {
	return Limits{
		AcceptedTokens:      100_000,
		ReuseBound:          5 * time.Second,
		APIServerTokenCache: 10 * time.Second,
		Decisions:           10_000,
		KeyRefetchInterval:  5 * time.Second,
		KeyFetchTimeout:     10 * time.Second,
		Leeway:              5 * time.Second,
	}
}

// RoleRevocationBound is the longest a removed RoleBinding (or ClusterRoleBinding) keeps
// working for a ServiceAccount: this operator's reuse of the RBAC decision.
func (l Limits) RoleRevocationBound() time.Duration { return l.ReuseBound }

// TokenRevocationBound is the longest a deleted ServiceAccount or a revoked token keeps
// working: this operator's reuse of a TokenReview, after the apiserver's own.
func (l Limits) TokenRevocationBound() time.Duration { return l.ReuseBound + l.APIServerTokenCache }
