package operator_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/operator/options"
	"github.com/gitread/usercredits-operator/test/framework"
)

// apiserverRequests reads the apiserver's own request counter for resource and verb.
func apiserverRequests(t *testing.T, resource, verb string) float64 {
	t.Helper()
	n, err := framework.APIServerRequests(context.Background(), restCfg, resource, verb)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// jwtPart decodes part i (0 header, 1 claims) of a compact JWT.
func jwtPart(t *testing.T, token string, i int) map[string]any {
	t.Helper()
	data, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func b64JSON(v any) string {
	data, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(data)
}

// TestForgedServiceAccountTokensNeverReachTheApiserver: 2,000 tokens naming the cluster's
// ServiceAccount issuer that no cluster key signed are refused without a TokenReview, and
// a real caller's accepted token survives the flood.
func TestForgedServiceAccountTokensNeverReachTheApiserver(t *testing.T) {
	user := "user_Forged1"
	real := serviceAccountToken(t, "flood-viewer", "credits-viewer")
	get := creditsURL(apiBase, "/api/credits", user)
	if status, body := request(t, "GET", get, real, ""); status != 200 {
		t.Fatalf("real caller: %d %s", status, body)
	}
	reviewsBefore := apiserverRequests(t, "tokenreviews", "POST")
	started := time.Now()

	header, claims := jwtPart(t, real, 0), jwtPart(t, real, 1)
	parts := strings.Split(real, ".")
	sameKid, err := auth.NewSigner(header["kid"].(string)) // another key claiming the cluster's kid
	if err != nil {
		t.Fatal(err)
	}
	forge := func(i int) string {
		c := map[string]any{}
		for k, v := range claims {
			c[k] = v
		}
		c["sub"] = fmt.Sprintf("system:serviceaccount:%s:forged-%d", testNamespace, i)
		switch i % 4 {
		case 0: // unsigned
			return b64JSON(map[string]string{"alg": "none", "kid": header["kid"].(string)}) + "." + b64JSON(c) + "."
		case 1: // a real header and signature over other claims
			return parts[0] + "." + b64JSON(c) + "." + parts[2]
		case 2: // signed by another key under the cluster's kid
			tok, err := sameKid.Sign(c)
			if err != nil {
				t.Error(err)
			}
			return tok
		default: // an unknown kid
			return b64JSON(map[string]string{"alg": "RS256", "kid": fmt.Sprint("forged-", i)}) + "." + b64JSON(c) + ".c2ln"
		}
	}
	var wg sync.WaitGroup
	var accepted atomic.Int32
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < 2000; i += 8 {
				if status, body := request(t, "GET", get, forge(i), ""); status != 401 || body != `{"error":"Unauthorized"}` {
					accepted.Add(1)
					t.Errorf("forged token %d: %d %s", i, status, body)
				}
			}
		})
	}
	wg.Wait()
	flood := time.Since(started)
	reviews := apiserverRequests(t, "tokenreviews", "POST") - reviewsBefore
	t.Logf("2,000 forged tokens refused in %v at the cost of %.0f TokenReviews", flood.Round(time.Millisecond), reviews)
	if reviews > 5 {
		t.Fatalf("forged tokens cost %.0f TokenReviews, at most 5 allowed", reviews)
	}
	if status, body := request(t, "GET", get, real, ""); status != 200 {
		t.Fatalf("real caller after the flood: %d %s", status, body)
	}
	if flood < auth.DefaultLimits().ReuseBound-time.Second {
		if n := apiserverRequests(t, "tokenreviews", "POST") - reviewsBefore; n != reviews {
			t.Fatalf("the real caller's accepted token did not survive the flood: it cost a new TokenReview")
		}
	}
}

// TestRefusedConsumesCostNoApiserverRead: a user who keeps consuming at balance 0 (with or
// without a record) is answered from the cache, but for one confirmation read a second.
func TestRefusedConsumesCostNoApiserverRead(t *testing.T) {
	withRecord, withoutRecord := "user_Broke1", "user_NeverPaid1"
	expectCall(t, "seed 0", "POST", tokenFor(t, withRecord), `{"credits":0}`, 200, `{"success":true,"credits":0}`)
	for _, user := range []string{withRecord, withoutRecord} {
		tok := tokenFor(t, user)
		before, start := apiserverRequests(t, "usercredits", "GET"), time.Now()
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for range 250 {
					if status, body := request(t, "POST", apiURL+"/consume", tok, ""); status != 402 || body != `{"error":"Insufficient credits","credits":0}` {
						t.Errorf("%s worker %d: %d %s", user, w, status, body)
						return
					}
				}
			})
		}
		wg.Wait()
		gets, took := apiserverRequests(t, "usercredits", "GET")-before, time.Since(start)
		t.Logf("%s: 1,000 refused consumes cost %.0f apiserver GETs in %v", user, gets, took.Round(time.Millisecond))
		if allowed := math.Min(50, math.Ceil(took.Seconds())+1); gets > allowed {
			t.Fatalf("%s: 1,000 refused consumes cost %.0f apiserver GETs in %v, at most %.0f allowed (one a second, and 95 %% of them none)", user, gets, took, allowed)
		}
	}
}

// TestServiceAccountTokensAreAudienceBound: a token for this API's audience works; a token
// for the apiserver's own audience, which could be replayed against the apiserver, is 401.
func TestServiceAccountTokensAreAudienceBound(t *testing.T) {
	user := "user_Audience1"
	get := creditsURL(apiBase, "/api/credits", user)
	bound := serviceAccountToken(t, "audience-viewer", "credits-viewer")
	if status, body := request(t, "GET", get, bound, ""); status != 200 || body != `{"credits":0}` {
		t.Fatalf("audience-bound token: %d %s", status, body)
	}
	apiserverAudience := serviceAccountTokenFor(t, "audience-viewer", "credits-viewer")
	if status, body := request(t, "GET", get, apiserverAudience, ""); status != 401 || body != `{"error":"Unauthorized"}` {
		t.Fatalf("token for the apiserver's audience: %d %s, want 401", status, body)
	}
	// Listing the apiserver's audience too (a migration) accepts it again.
	iss := jwtPart(t, apiserverAudience, 1)["aud"].([]any)[0].(string)
	migrating := extraReplica(t, func(o *options.Options) {
		o.Auth.ServiceAccounts.Audiences = []string{auth.DefaultServiceAccountAudience, iss}
	})
	if status, body := request(t, "GET", creditsURL(migrating, "/api/credits", user), apiserverAudience, ""); status != 200 {
		t.Fatalf("during a migration that lists %q: %d %s", iss, status, body)
	}
}

// TestPerUserRateLimit: one user over the limit gets 429 with Retry-After and nothing
// changes; another user at the same time is not slowed.
func TestPerUserRateLimit(t *testing.T) {
	base := extraReplica(t, func(o *options.Options) { o.API.UserRateLimit = 10 })
	greedy, calm := "user_Greedy1", "user_Calm1"
	greedyTok, calmTok := tokenFor(t, greedy), tokenFor(t, calm)
	before := snapshot(t)

	var limited, ok atomic.Int32
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 75 {
				var hdr http.Header
				status, body := requestWith(t, "POST", base+"/api/credits/consume", greedyTok, "", &hdr)
				switch {
				case status == 429 && body == `{"error":"Too many requests"}` && hdr.Get("Retry-After") != "":
					limited.Add(1)
				case status == 402:
					ok.Add(1)
				default:
					t.Errorf("greedy user: %d %s (Retry-After %q)", status, body, hdr.Get("Retry-After"))
				}
			}
		})
	}
	calmStatuses := map[int]int{}
	for range 15 {
		status, _ := request(t, "GET", base+"/api/credits", calmTok, "")
		calmStatuses[status]++
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	t.Logf("greedy user: %d × 429, %d served; calm user: %v", limited.Load(), ok.Load(), calmStatuses)
	if limited.Load() < 200 {
		t.Fatalf("only %d of 300 fast requests were limited at 10/s", limited.Load())
	}
	if calmStatuses[200] != 15 {
		t.Fatalf("another user was slowed by the greedy one: %v", calmStatuses)
	}
	expectUnchanged(t, before)
}

// TestRevocationTakesEffectWithinTheBound: removing a RoleBinding or deleting the
// ServiceAccount stops its caller within the documented bound (for a deleted account, it
// includes the apiserver's own token cache, which answers TokenReviews for a while after).
func TestRevocationTakesEffectWithinTheBound(t *testing.T) {
	ctx := context.Background()
	limits := auth.DefaultLimits()
	get := creditsURL(apiBase, "/api/credits", "user_Revoked1")
	cs, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		sa     string
		want   int
		bound  time.Duration
		revoke func(sa string) error
	}{
		{"revoke-binding", 403, limits.RoleRevocationBound(), func(sa string) error {
			return cs.RbacV1().RoleBindings(testNamespace).Delete(ctx, sa+"-credits-viewer", metav1.DeleteOptions{})
		}},
		{"revoke-account", 401, limits.TokenRevocationBound(), func(sa string) error {
			return cs.CoreV1().ServiceAccounts(testNamespace).Delete(ctx, sa, metav1.DeleteOptions{})
		}},
	} {
		tok := serviceAccountToken(t, c.sa, "credits-viewer")
		if status, body := request(t, "GET", get, tok, ""); status != 200 {
			t.Fatalf("%s before revocation: %d %s", c.sa, status, body)
		}
		if err := c.revoke(c.sa); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for {
			status, _ := request(t, "GET", get, tok, "")
			if status == c.want {
				t.Logf("%s: %d %v after revocation (bound %v)", c.sa, status, time.Since(start).Round(time.Millisecond), c.bound)
				break
			}
			if time.Since(start) > c.bound+time.Second {
				t.Fatalf("%s: still answered %d %v after revocation; the bound is %v", c.sa, status, time.Since(start).Round(time.Millisecond), c.bound)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// TestRepeatedSetsFormOneEventSeries: every set leaves an Event, but a user who keeps
// setting their balance costs the apiserver one write per request, not a new Event object
// each time: the Events about one user's sets form one series that client-go counts.
func TestRepeatedSetsFormOneEventSeries(t *testing.T) {
	user := "user_SetsALot1"
	tok := tokenFor(t, user)
	before := apiserverRequests(t, "usercredits", "PATCH")
	const sets = 30
	for i := range sets {
		want := fmt.Sprintf(`{"success":true,"credits":%d}`, 100+i)
		expectCall(t, "set", "POST", tok, fmt.Sprintf(`{"credits":%d}`, 100+i), 200, want)
	}
	if patches := apiserverRequests(t, "usercredits", "PATCH") - before; patches > sets {
		t.Errorf("%d sets cost %.0f usercredits patches", sets, patches)
	}
	framework.Eventually(t, 10*time.Second, func() error {
		if n := events(t, user, "CreditsSet"); n != 1 {
			return fmt.Errorf("%d CreditsSet Events about %s, want 1 series", n, user)
		}
		return nil
	})
	time.Sleep(time.Second) // Events are sent asynchronously: none may trail behind
	if n := events(t, user, "CreditsSet"); n != 1 {
		t.Fatalf("%d sets left %d CreditsSet Events, want 1 series", sets, n)
	}
}
