package operator

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gitread/usercredits-operator/internal/auth"
)

func TestNewClerkConfigRefusesToStartWithoutKeys(t *testing.T) {
	_, dev, err := NewClerkConfig(AuthOptions{})
	if !errors.Is(err, ErrNoAuth) || dev != nil {
		t.Fatalf("no keys, no dev mode: got dev=%v err=%v, want ErrNoAuth", dev, err)
	}
	if !containsAll(err.Error(), "CLERK_JWT_KEY", "CLERK_SECRET_KEY", "--dev-auth") {
		t.Fatalf("message does not say how to fix it: %q", err)
	}
}

func TestNewClerkConfigDevModeTokenWorks(t *testing.T) {
	cfg, dev, err := NewClerkConfig(AuthOptions{DevAuth: true})
	if err != nil || dev == nil {
		t.Fatalf("dev mode: %v %v", dev, err)
	}
	v, err := auth.NewAuthenticator(auth.Config{Clerk: &cfg, Limits: auth.DefaultLimits()})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(context.Background(), dev.Token)
	if err != nil || p.UserID != DevUserID {
		t.Fatalf("dev token: %+v %v", p, err)
	}
}

func TestNewClerkConfigPrefersConfiguredKeysOverDevMode(t *testing.T) {
	_, dev, err := NewClerkConfig(AuthOptions{SecretKey: "sk_test_x", DevAuth: true})
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
