package operator

import (
	"errors"
	"fmt"
	"time"

	"github.com/gitread/usercredits-operator/internal/auth"
)

// AuthOptions says where Clerk keys come from.
type AuthOptions struct {
	// JWTKeyPEM is CLERK_JWT_KEY; SecretKey is CLERK_SECRET_KEY.
	JWTKeyPEM, SecretKey string
	APIURL               string
	AuthorizedParties    []string
	// DevAuth, when no Clerk key is set, generates a local signing key and a token for
	// DevUserID. Never implied against a real cluster.
	DevAuth bool
}

// DevUserID is the user of the token that dev mode prints.
const DevUserID = "user_dev"

// DevSession is what dev mode hands the person running the operator.
type DevSession struct {
	UserID string
	Token  string
}

// ErrNoAuth is returned when no Clerk key is configured outside dev mode.
var ErrNoAuth = errors.New("no Clerk key configured: set CLERK_JWT_KEY (the instance's PEM public key) " +
	"or CLERK_SECRET_KEY, or pass --dev-auth for local development only")

// NewClerkConfig says where Clerk keys come from; in dev mode it also returns a ready
// session token signed by a key generated for this run.
func NewClerkConfig(opts AuthOptions) (auth.ClerkConfig, *DevSession, error) {
	cfg := auth.ClerkConfig{
		JWTKeyPEM:         opts.JWTKeyPEM,
		SecretKey:         opts.SecretKey,
		APIURL:            opts.APIURL,
		AuthorizedParties: opts.AuthorizedParties,
	}
	if cfg.JWTKeyPEM != "" || cfg.SecretKey != "" {
		return cfg, nil, nil
	}
	if !opts.DevAuth {
		return cfg, nil, ErrNoAuth
	}
	signer, err := auth.NewSigner("dev")
	if err != nil {
		return cfg, nil, fmt.Errorf("generating the dev signing key: %w", err)
	}
	token, err := signer.SessionToken(DevUserID, 24*time.Hour)
	if err != nil {
		return cfg, nil, fmt.Errorf("signing the dev token: %w", err)
	}
	cfg.JWTKeyPEM = signer.PublicKeyPEM()
	return cfg, &DevSession{UserID: DevUserID, Token: token}, nil
}
