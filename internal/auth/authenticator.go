package auth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"github.com/gitread/usercredits-operator/internal/expiring"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Config says which issuers an Authenticator accepts.
type Config struct {
	// Clerk accepts Clerk session tokens; nil accepts none.
	Clerk *ClerkConfig
	// ServiceAccounts accepts the cluster's ServiceAccount tokens; nil accepts none.
	ServiceAccounts *ServiceAccountConfig
	Limits          Limits
	// Now replaces time.Now in tests.
	Now func() time.Time
}

// Authenticator is the one authentication pipeline: a token is hashed once and looked up
// in the cache of accepted tokens; on a miss it is parsed once, routed by its issuer,
// its signature checked against that issuer's published keys, its claims validated, and
// only then (ServiceAccounts) reviewed by the apiserver. Only accepted tokens are cached,
// never past their exp.
type Authenticator struct {
	clerk    *clerkIssuer
	sa       *serviceAccountIssuer
	accepted *expiring.Cache[[sha256.Size]byte, Principal]
	now      func() time.Time
	settings Settings
}

// NewAuthenticator builds the pipeline for cfg.
func NewAuthenticator(cfg Config) (*Authenticator, error) {
	a := &Authenticator{accepted: expiring.NewCache[[sha256.Size]byte, Principal](cfg.Limits.AcceptedTokens), now: cfg.Now}
	if a.now == nil {
		a.now = time.Now
	}
	var err error
	if cfg.Clerk != nil {
		a.settings.Clerk = *cfg.Clerk
		if a.clerk, err = newClerkIssuer(*cfg.Clerk, cfg.Limits, a.now); err != nil {
			return nil, err
		}
	}
	if cfg.ServiceAccounts != nil {
		a.settings.ServiceAccounts = cfg.ServiceAccounts.ServiceAccountSettings
		if a.sa, err = newServiceAccountIssuer(*cfg.ServiceAccounts, cfg.Limits, a.now); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Settings are the settings the authenticator runs with; ServiceAccount issuers as resolved.
func (a *Authenticator) Settings() Settings { return a.settings }

// signatureAlgorithms are the only algorithms a token may be signed with: asymmetric ones,
// so neither "none" nor a public key used as an HMAC secret can pass.
var signatureAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512, jose.PS256, jose.PS384, jose.PS512}

// token is a bearer token parsed once: its signature not yet verified, its claims decoded.
type token struct {
	raw    string
	jws    *jose.JSONWebSignature
	kid    string
	alg    string
	claims tokenClaims
}

// tokenClaims are the claims any of the issuers reads.
type tokenClaims struct {
	jwt.Claims
	AuthorizedParty string `json:"azp"`
}

// Verify implements Verifier.
func (a *Authenticator) Verify(ctx context.Context, raw string) (Principal, error) {
	if len(raw) > maxTokenBytes || !looksLikeJWT(raw) {
		return Principal{}, fmt.Errorf("%w: not a JWT", ErrUnauthenticated)
	}
	now := a.now()
	cacheKey := sha256.Sum256([]byte(raw))
	if p, ok := a.accepted.Get(cacheKey, now); ok {
		return p, nil
	}
	t, err := parseToken(raw)
	if err != nil {
		return Principal{}, err
	}
	var p Principal
	var until time.Time
	switch {
	case a.clerk != nil && isClerkIssuer(t.claims.Issuer):
		p, until, err = a.clerk.verify(ctx, t, now)
	case a.sa != nil && slices.Contains(a.sa.issuers, t.claims.Issuer):
		p, until, err = a.sa.verify(ctx, t, now)
	default:
		return Principal{}, fmt.Errorf("%w: no verifier for issuer %q", ErrUnauthenticated, t.claims.Issuer)
	}
	if err != nil {
		return Principal{}, err
	}
	a.accepted.Put(cacheKey, p, until, now)
	return p, nil
}

// parseToken parses a compact JWS once and decodes its claims, unverified.
func parseToken(raw string) (*token, error) {
	jws, err := jose.ParseSignedCompact(raw, signatureAlgorithms)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	t := &token{raw: raw, jws: jws, kid: jws.Signatures[0].Protected.KeyID, alg: jws.Signatures[0].Protected.Algorithm}
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &t.claims); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrUnauthenticated, err)
	}
	return t, nil
}

// verify checks the token's signature with k, and its exp, nbf and iat at now. A token
// without exp is refused: nothing may be accepted, or cached, forever.
func (t *token) verify(k verificationKey, now time.Time, leeway time.Duration) error {
	if k.alg != "" && t.alg != k.alg {
		return fmt.Errorf("%w: signed with %s, the key is for %s", ErrUnauthenticated, t.alg, k.alg)
	}
	if _, err := t.jws.Verify(k.key); err != nil {
		return fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	if t.claims.Expiry == nil {
		return fmt.Errorf("%w: token has no exp", ErrUnauthenticated)
	}
	if err := t.claims.ValidateWithLeeway(jwt.Expected{Time: now}, leeway); err != nil {
		return fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	return nil
}

// expiry is the token's exp.
func (t *token) expiry() time.Time { return t.claims.Expiry.Time() }
