package auth

import "time"

// Limits are every size and lifetime of authentication and authorization, in one place.
type Limits struct {
	// AcceptedTokens bounds the one cache of accepted tokens (keyed by SHA-256). Rejected
	// tokens are never cached, so a flood of forged tokens cannot evict a real caller.
	AcceptedTokens int
	// RevocationBound is the longest a ServiceAccount token's TokenReview or an RBAC decision
	// is reused: a deleted ServiceAccount, a revoked token or a removed RoleBinding stops
	// working within it. Clerk session tokens are reused until their exp (about a minute).
	RevocationBound time.Duration
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
		AcceptedTokens:     100_000,
		RevocationBound:    10 * time.Second,
		Decisions:          10_000,
		KeyRefetchInterval: 5 * time.Second,
		KeyFetchTimeout:    10 * time.Second,
		Leeway:             5 * time.Second,
	}
}
