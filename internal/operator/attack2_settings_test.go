package operator_test

import (
	"strings"
	"testing"

	"github.com/gitread/usercredits-operator/internal/operator/options"
)

// TestAttack2RateLimitThatIsNotANumberIsRefused: the rate-limit flags take any float, and
// Validate refuses only those below 0, which NaN is not: --user-rate-limit=NaN (a
// templating slip such as a Helm value that rendered as NaN) starts a manager whose limiter
// computes with NaN (a burst of int(2*NaN), Retry-After from NaN seconds) instead of
// refusing to start with a message naming the flag, as --user-rate-limit=-1 does.
func TestAttack2RateLimitThatIsNotANumberIsRefused(t *testing.T) {
	env := func(name string) (string, bool) {
		if name == "CLERK_SECRET_KEY" {
			return "sk_test_attack2", true
		}
		return "", false
	}
	for _, flag := range []string{"--user-rate-limit", "--service-account-rate-limit"} {
		if _, _, err := options.Parse([]string{flag + "=-1"}, env); err == nil || !strings.Contains(err.Error(), flag) {
			t.Fatalf("%s=-1: %v; the check this test compares with is gone", flag, err)
		}
		_, _, err := options.Parse([]string{flag + "=NaN"}, env)
		if err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("%s=NaN: the manager starts (%v); want it refused with a message naming %s", flag, err, flag)
		}
	}
}
