package operator

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestNewVerifierRefusesToStartWithoutKeys(t *testing.T) {
	_, dev, err := NewVerifier(AuthOptions{})
	if !errors.Is(err, ErrNoAuth) || dev != nil {
		t.Fatalf("no keys, no dev mode: got dev=%v err=%v, want ErrNoAuth", dev, err)
	}
	if !containsAll(err.Error(), "CLERK_JWT_KEY", "CLERK_SECRET_KEY", "--dev-auth") {
		t.Fatalf("message does not say how to fix it: %q", err)
	}
}

func TestNewVerifierDevModeTokenWorks(t *testing.T) {
	v, dev, err := NewVerifier(AuthOptions{DevAuth: true})
	if err != nil || dev == nil {
		t.Fatalf("dev mode: %v %v", dev, err)
	}
	p, err := v.Verify(context.Background(), dev.Token)
	if err != nil || p.UserID != DevUserID {
		t.Fatalf("dev token: %+v %v", p, err)
	}
}

func TestNewVerifierPrefersConfiguredKeysOverDevMode(t *testing.T) {
	_, dev, err := NewVerifier(AuthOptions{SecretKey: "sk_test_x", DevAuth: true})
	if err != nil || dev != nil {
		t.Fatalf("a configured key must win over dev mode: dev=%v err=%v", dev, err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
