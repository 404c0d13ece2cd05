package auth

import (
	"errors"

	"github.com/gitread/usercredits-operator/internal/settings"
)

// DefaultServiceAccountAudience is the audience in-cluster callers request their projected
// ServiceAccount tokens for: a token for this API is useless against the apiserver.
const DefaultServiceAccountAudience = "credits.gitread.dev"

// Settings are authentication's settings that people set (flags and environment, AddFlags).
type Settings struct {
	Clerk           ClerkConfig
	ServiceAccounts ServiceAccountSettings
}

// ServiceAccountSettings say which ServiceAccount tokens are accepted.
type ServiceAccountSettings struct {
	// Issuers are the iss values of the cluster's ServiceAccount tokens; empty: discovered
	// from the apiserver's /.well-known/openid-configuration.
	Issuers []string
	// Audiences are the audiences a token must be bound to (one of them); a token for the
	// apiserver's own audience is refused unless it is listed, so a token given to this API
	// cannot be replayed against the apiserver and the reverse.
	Audiences []string
}

// AddFlags binds authentication's settings.
func (s *Settings) AddFlags(b *settings.Binder) {
	b.Section("Authentication")
	b.SecretEnv(&s.Clerk.JWTKeyPEM, "CLERK_JWT_KEY", "The Clerk instance's PEM public key: session tokens are verified without a network call. One of CLERK_JWT_KEY and CLERK_SECRET_KEY is required.")
	b.SecretEnv(&s.Clerk.SecretKey, "CLERK_SECRET_KEY", "The Clerk Backend API secret key (sk_...): the JWKS is fetched from the Backend API.")
	b.String(&s.Clerk.APIURL, "clerk-api-url", "", "Clerk Backend API base URL for the JWKS (with CLERK_SECRET_KEY).").DefaultText("Clerk's own")
	b.List(&s.Clerk.AuthorizedParties, "authorized-parties", nil, "Comma-separated origins accepted in a Clerk token's azp claim; empty accepts any.")
	b.List(&s.ServiceAccounts.Issuers, "service-account-issuer", nil, "Comma-separated iss of the cluster's ServiceAccount tokens.").DefaultText("discovered from the apiserver")
	b.List(&s.ServiceAccounts.Audiences, "service-account-audience", []string{DefaultServiceAccountAudience},
		"Comma-separated audiences a ServiceAccount token must be bound to (projected token volume or kubectl create token --audience). Add the apiserver's own audience only while migrating callers.")
}

// ErrNoClerkKey is returned when no Clerk key is configured.
var ErrNoClerkKey = errors.New("no Clerk key configured: set CLERK_JWT_KEY (the instance's PEM public key) " +
	"or CLERK_SECRET_KEY; for local development, make run generates a key and prints a token")

// Validate reports settings authentication cannot run with.
func (s Settings) Validate() error {
	var errs []error
	if s.Clerk.JWTKeyPEM == "" && s.Clerk.SecretKey == "" {
		errs = append(errs, ErrNoClerkKey)
	}
	if len(s.ServiceAccounts.Audiences) == 0 {
		errs = append(errs, errors.New("--service-account-audience is empty: no ServiceAccount token could be accepted"))
	}
	return errors.Join(errs...)
}
