// Package auth turns a bearer token into the Principal it speaks for.
package auth

import (
	"context"
	"errors"
	"strings"
)

// Kind says what sort of caller a Principal is.
type Kind string

const (
	// KindClerkUser is an end user signed in through Clerk.
	KindClerkUser Kind = "ClerkUser"
	// KindServiceAccount is an in-cluster service with a Kubernetes ServiceAccount token.
	KindServiceAccount Kind = "ServiceAccount"
)

// Principal is an authenticated caller.
type Principal struct {
	Kind Kind
	// UserID is the Clerk user ID (the token's sub) of a KindClerkUser.
	UserID string
	// Username, UID, Groups and Extra identify a KindServiceAccount to SubjectAccessReview.
	Username string
	UID      string
	Groups   []string
	Extra    map[string][]string
}

// ErrUnauthenticated is wrapped by every error that means "no valid credentials".
var ErrUnauthenticated = errors.New("unauthenticated")

// Verifier checks a bearer token.
type Verifier interface {
	// Verify returns the token's principal, or an error wrapping ErrUnauthenticated.
	Verify(ctx context.Context, token string) (Principal, error)
}

// maxTokenBytes bounds what is parsed at all; Clerk session tokens are far smaller.
const maxTokenBytes = 8 << 10

// BearerToken extracts the token from an Authorization header value. The scheme is
// case-insensitive (RFC 7235); anything else is not a bearer token.
func BearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	if token == "" || len(token) > maxTokenBytes || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

// looksLikeJWT is a free structural check (three non-empty dot-separated parts) so that
// garbage never costs a parse, a key lookup or a JWKS fetch.
func looksLikeJWT(token string) bool {
	first := strings.IndexByte(token, '.')
	last := strings.LastIndexByte(token, '.')
	return first > 0 && last > first+1 && last < len(token)-1 && strings.Count(token, ".") == 2
}
