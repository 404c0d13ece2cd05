package e2e

// Settings of the credits API, each observed through the built binary over HTTP: rate
// limits, the ServiceAccount audience and issuer, authorized parties, CORS, the grant-key
// retention and the request timeout.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gitread/usercredits-operator/test/framework"
)

// burst sends n immediate GETs of user's balance with token and returns their statuses,
// and the Retry-After and body of the first refusal.
func burst(t *testing.T, m *manager, token, query string, n int) (statuses []int, retryAfter, refusal string) {
	t.Helper()
	for range n {
		resp, body := httpResponse(t, http.DefaultTransport, "GET", m.url("/api/credits"+query), token, "")
		if resp == nil {
			t.Fatalf("GET: %s", body)
		}
		statuses = append(statuses, resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests && refusal == "" {
			retryAfter, refusal = resp.Header.Get("Retry-After"), body
		}
	}
	return statuses, retryAfter, refusal
}

// TestRateLimits: by default a Clerk user may send 10 immediate requests (20/s, burst 40)
// and a ServiceAccount is not limited; at 1/s (burst 2) the third immediate request of
// either is 429 with Retry-After.
func TestRateLimits(t *testing.T) {
	allOK := func(statuses []int) bool {
		for _, s := range statuses {
			if s != 200 {
				return false
			}
		}
		return true
	}
	limited := func(t *testing.T, what string, statuses []int, retryAfter, refusal string) {
		t.Helper()
		if len(statuses) != 3 || statuses[0] != 200 || statuses[1] != 200 || statuses[2] != 429 {
			t.Errorf("%s: statuses %v, want [200 200 429]", what, statuses)
		}
		if refusal != `{"error":"Too many requests"}` {
			t.Errorf("%s: the refusal's body is %q", what, refusal)
		}
		if s, err := strconv.Atoi(retryAfter); err != nil || s < 1 {
			t.Errorf("%s: Retry-After %q, want whole seconds ≥ 1", what, retryAfter)
		}
	}
	t.Run("defaults", func(t *testing.T) {
		m := launch(t, nil)
		if statuses, _, _ := burst(t, m, userToken(t, "user_E2ERate1"), "", 10); !allOK(statuses) {
			t.Errorf("a Clerk user's 10 immediate requests at the default limit: %v", statuses)
		}
		viewer := suite.c.caller(t, e2eNamespace, "rate-viewer-default", "credits-viewer")
		if statuses, _, _ := burst(t, m, viewer, "?userId=user_E2ERate1", 10); !allOK(statuses) {
			t.Errorf("a ServiceAccount's 10 immediate requests, unlimited by default: %v", statuses)
		}
	})
	t.Run("--user-rate-limit=1", func(t *testing.T) {
		m := launch(t, []string{"--user-rate-limit=1"})
		statuses, retryAfter, refusal := burst(t, m, userToken(t, "user_E2ERate2"), "", 3)
		limited(t, "Clerk user", statuses, retryAfter, refusal)
		// Each user has a bucket of their own.
		expectHTTP(t, "another user", 200, `{"credits":0}`)(httpDo(t, "GET", m.url("/api/credits"), userToken(t, "user_E2ERate3"), ""))
	})
	t.Run("--service-account-rate-limit=1", func(t *testing.T) {
		m := launch(t, []string{"--service-account-rate-limit=1"})
		viewer := suite.c.caller(t, e2eNamespace, "rate-viewer-limited", "credits-viewer")
		statuses, retryAfter, refusal := burst(t, m, viewer, "?userId=user_E2ERate4", 3)
		limited(t, "ServiceAccount", statuses, retryAfter, refusal)
	})
}

// TestServiceAccountAudience: with --service-account-audience set, a token bound to that
// audience is accepted and one bound to the default credits.gitread.dev is refused.
func TestServiceAccountAudience(t *testing.T) {
	const audience = "https://credits.e2e.example"
	m := launch(t, []string{"--service-account-audience=" + audience})
	suite.c.caller(t, e2eNamespace, "audience-viewer", "credits-viewer")
	url := m.url("/api/credits?userId=user_E2EAud1")
	expectHTTP(t, "token for "+audience, 200, `{"credits":0}`)(httpDo(t, "GET", url, suite.c.audienceToken(t, e2eNamespace, "audience-viewer", audience), ""))
	expectHTTP(t, "token for credits.gitread.dev", 401, `{"error":"Unauthorized"}`)(httpDo(t, "GET", url, suite.c.audienceToken(t, e2eNamespace, "audience-viewer", "credits.gitread.dev"), ""))
}

// TestServiceAccountIssuer: --service-account-issuer names the issuer trusted instead of
// the discovered one: the cluster's tokens are refused under another issuer, and accepted
// when the flag names the cluster's own.
func TestServiceAccountIssuer(t *testing.T) {
	data, err := suite.c.clientset.Discovery().RESTClient().Get().AbsPath("/.well-known/openid-configuration").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var discovery struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal(data, &discovery); err != nil || discovery.Issuer == "" {
		t.Fatalf("the apiserver's OIDC discovery document: %s (%v)", data, err)
	}
	viewer := suite.c.caller(t, e2eNamespace, "issuer-viewer", "credits-viewer")
	for _, tc := range []struct {
		issuer, body string
		status       int
	}{
		{"https://issuer.e2e.invalid", `{"error":"Unauthorized"}`, 401},
		{discovery.Issuer, `{"credits":0}`, 200},
	} {
		t.Run(tc.issuer, func(t *testing.T) {
			m := launch(t, []string{"--service-account-issuer=" + tc.issuer})
			expectHTTP(t, "the cluster's token", tc.status, tc.body)(httpDo(t, "GET", m.url("/api/credits?userId=user_E2EIss1"), viewer, ""))
		})
	}
}

// TestAuthorizedParties: with --authorized-parties only session tokens whose azp is listed
// are accepted.
func TestAuthorizedParties(t *testing.T) {
	m := launch(t, []string{"--authorized-parties=https://app.e2e.example,https://admin.e2e.example"})
	user := "user_E2EAzp1"
	for _, tc := range []struct {
		name   string
		claims map[string]any
		status int
		body   string
	}{
		{"azp listed", map[string]any{"azp": "https://admin.e2e.example"}, 200, `{"credits":0}`},
		{"azp not listed", map[string]any{"azp": "https://evil.e2e.example"}, 401, `{"error":"Unauthorized"}`},
		{"no azp", nil, 401, `{"error":"Unauthorized"}`},
	} {
		expectHTTP(t, tc.name, tc.status, tc.body)(httpDo(t, "GET", m.url("/api/credits"), sessionToken(t, user, tc.claims), ""))
	}
}

// TestCORSAllowedOrigins: a listed origin's preflight is answered and its responses carry
// Access-Control-Allow-Origin; another origin gets neither.
func TestCORSAllowedOrigins(t *testing.T) {
	const allowed, other = "https://app.e2e.example", "https://evil.e2e.example"
	m := launch(t, []string{"--cors-allowed-origins=" + allowed + ",https://admin.e2e.example"})
	token := userToken(t, "user_E2ECors1")
	preflight := func(origin string) *http.Response {
		resp, body := httpResponse(t, http.DefaultTransport, "OPTIONS", m.url("/api/credits"), "", "",
			"Origin", origin, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
		if resp == nil {
			t.Fatalf("preflight: %s", body)
		}
		return resp
	}
	resp := preflight(allowed)
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != allowed ||
		resp.Header.Get("Access-Control-Allow-Methods") == "" || resp.Header.Get("Access-Control-Allow-Headers") == "" {
		t.Errorf("preflight from %s: %d %v", allowed, resp.StatusCode, resp.Header)
	}
	if resp := preflight(other); resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Access-Control-Allow-Methods") != "" {
		t.Errorf("preflight from %s: %d %v", other, resp.StatusCode, resp.Header)
	}
	for origin, want := range map[string]string{allowed: allowed, other: ""} {
		resp, body := httpResponse(t, http.DefaultTransport, "GET", m.url("/api/credits"), token, "", "Origin", origin)
		if resp == nil || resp.StatusCode != 200 || body != `{"credits":0}` {
			t.Fatalf("GET from %s: %v %s", origin, resp, body)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != want {
			t.Errorf("GET from %s: Access-Control-Allow-Origin %q, want %q", origin, got, want)
		}
	}
}

// TestGrantKeyRetention: with --grant-key-retention=2s a keyed grant retried within 2 s is
// a replay, and retried after it is applied again.
func TestGrantKeyRetention(t *testing.T) {
	user := "user_E2ERetention1"
	m := launch(t, []string{"--grant-key-retention=2s"})
	granter := suite.c.caller(t, e2eNamespace, "retention-granter", "credits-granter")
	grant := func() (int, string) {
		return httpDo(t, "POST", m.url("/api/credits/grant?userId="+user), granter, `{"credits":3}`, "Idempotency-Key", "e2e-retention-1")
	}
	first := time.Now()
	expectHTTP(t, "grant", 200, `{"success":true,"credits":3}`)(grant())
	expectHTTP(t, "retried at once", 200, `{"success":true,"credits":3}`)(grant())
	if elapsed := time.Since(first); elapsed >= 2*time.Second {
		t.Fatalf("the retry came %v after the grant: not within the retention", elapsed)
	}
	if got := readBalance(t, suite.c, user); got != 3 {
		t.Fatalf("after a retry within the retention: %d credits, want 3", got)
	}
	time.Sleep(time.Until(first.Add(3 * time.Second)))
	expectHTTP(t, "retried after the retention", 200, `{"success":true,"credits":6}`)(grant())
	if got := readBalance(t, suite.c, user); got != 6 {
		t.Fatalf("after a retry past the retention: %d credits, want 6", got)
	}
}

// TestAPIRequestTimeout: --api-request-timeout bounds each request's authentication work:
// at 1ns a ServiceAccount token cannot be checked against the apiserver in time and the
// request is refused, where the default 5s serves it (every other ServiceAccount test).
// Which refusal depends on the apiserver call the deadline cuts (the issuer's keys: 401;
// the TokenReview: 500), so the test asserts the refusal and, from the debug log, its cause.
func TestAPIRequestTimeout(t *testing.T) {
	m := launch(t, []string{"--api-request-timeout=1ns", "--zap-log-level=debug"})
	viewer := suite.c.caller(t, e2eNamespace, "timeout-viewer", "credits-viewer")
	status, body := httpDo(t, "GET", m.url("/api/credits?userId=user_E2ETimeout1"), viewer, "")
	if status == 200 || !strings.HasPrefix(body, `{"error":`) {
		t.Errorf("GET by a ServiceAccount with a 1ns request timeout: %d %s, want a refusal", status, body)
	}
	// The log line reaches the pipe a moment after the answer.
	framework.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(m.Logs(), "context deadline exceeded") {
			return fmt.Errorf("the refusal is not the deadline's (status %d %s)", status, body)
		}
		return nil
	})
}
