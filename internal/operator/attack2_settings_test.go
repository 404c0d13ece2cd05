package operator_test

import (
	"strings"
	"testing"

	"github.com/gitread/usercredits-operator/internal/operator/options"
)

// TestAttack2RateLimitThatIsNotANumberIsRefused: the rate-limit flags take any float, and
// Validate refuses only those below 0, which NaN is not: --user-rate-limit=NaN (a
// templating slip) starts a manager whose limiter computes with NaN: int(2*NaN) is the
// smallest int on amd64 (burst 1), every refill time is a negative Duration, so each
// bucket expires at once and no limit applies, silently. It should refuse to start with a
// message naming the flag, as --user-rate-limit=-1 does.
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

// TestAttack2CORSOriginsThatNeverMatchAreRefused: --cors-allowed-origins is compared with
// the browser's Origin header byte for byte, and accepts any text. "*" (what most servers
// take for "any origin") and an origin with a path or a trailing slash
// (https://gitread.dev/, as copied from the address bar) never equal an Origin header
// (scheme://host[:port]), so the manager starts and every browser call is refused by CORS,
// with nothing in its log or at start to say why. Want: refused at start, naming the flag.
func TestAttack2CORSOriginsThatNeverMatchAreRefused(t *testing.T) {
	env := func(name string) (string, bool) {
		if name == "CLERK_SECRET_KEY" {
			return "sk_test_attack2", true
		}
		return "", false
	}
	if _, _, err := options.Parse([]string{"--cors-allowed-origins=https://gitread.dev,http://localhost:3000"}, env); err != nil {
		t.Fatalf("origins as browsers send them: %v", err)
	}
	for _, value := range []string{"*", "https://gitread.dev/", "gitread.dev"} {
		_, _, err := options.Parse([]string{"--cors-allowed-origins=" + value}, env)
		if err == nil || !strings.Contains(err.Error(), "--cors-allowed-origins") {
			t.Errorf("--cors-allowed-origins=%s, which no Origin header ever equals: the manager starts (%v); want it refused naming the flag", value, err)
		}
	}
}
