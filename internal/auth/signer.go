package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

// DevIssuer is the issuer of tokens minted by a Signer; it passes Clerk's issuer check.
const DevIssuer = "https://clerk.usercredits.local"

// Signer mints RS256 session tokens the way a Clerk instance does. It serves dev mode
// (`make run` without Clerk keys) and tests; production tokens come from Clerk.
type Signer struct {
	KeyID string
	key   *rsa.PrivateKey
	sig   jose.Signer
}

// NewSigner generates a fresh RSA key.
func NewSigner(keyID string) (*Signer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", keyID)
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, opts)
	if err != nil {
		return nil, err
	}
	return &Signer{KeyID: keyID, key: key, sig: sig}, nil
}

// PublicKeyPEM is the public key in the form of CLERK_JWT_KEY.
func (s *Signer) PublicKeyPEM() string {
	der, err := x509.MarshalPKIXPublicKey(&s.key.PublicKey)
	if err != nil {
		panic(fmt.Sprintf("marshalling an RSA public key: %v", err)) // cannot happen for a generated key
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// JWKS is the public key as a JSON Web Key Set, as Clerk's /jwks serves it.
func (s *Signer) JWKS() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &s.key.PublicKey, KeyID: s.KeyID, Algorithm: "RS256", Use: "sig"}}}
}

// Sign signs arbitrary claims.
func (s *Signer) Sign(claims map[string]any) (string, error) {
	return josejwt.Signed(s.sig).Claims(claims).Serialize()
}

// SessionToken signs a session token for userID valid for ttl from now.
func (s *Signer) SessionToken(userID string, ttl time.Duration) (string, error) {
	now := time.Now()
	return s.Sign(map[string]any{
		"iss": DevIssuer,
		"sub": userID,
		"iat": now.Unix(),
		"nbf": now.Add(-5 * time.Second).Unix(),
		"exp": now.Add(ttl).Unix(),
		"sid": "sess_dev",
	})
}
