package operator_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// rawSet writes user's balance straight to the apiserver, as kubectl, GitOps or another
// replica would, behind this replica's back.
func rawSet(t *testing.T, user string, balance int64) {
	t.Helper()
	obj := &creditsv1alpha1.UserCredits{}
	obj.Namespace, obj.Name = testNamespace, account.ObjectNameForUser(user)
	// Without spec.lots, as a person setting a balance by hand would do once the user has
	// lots (the CRD refuses a spec.credits that disagrees with them): the whole balance is
	// then one lot.
	patch := client.RawPatch("application/merge-patch+json", fmt.Appendf(nil, `{"spec":{"credits":%d,"lots":null}}`, balance))
	if err := k8sClient.Patch(context.Background(), obj, patch); err != nil {
		t.Fatal(err)
	}
}

// TestSetMatchingAStaleCacheIsWritten: a set whose value equals the balance this replica's
// cache still shows must reach the apiserver all the same.
func TestSetMatchingAStaleCacheIsWritten(t *testing.T) {
	user := "user_StaleSet1"
	tok := tokenFor(t, user)
	const rounds = 200
	lost := 0
	for i := range rounds {
		expectCall(t, "set 10", "POST", tok, `{"credits":10}`, 200, `{"success":true,"credits":10}`)
		rawSet(t, user, 9)
		expectCall(t, "set 10 again", "POST", tok, `{"credits":10}`, 200, `{"success":true,"credits":10}`)
		if got := storedBalanceOf(t, user); got != 10 {
			lost++
			t.Logf("round %d: acknowledged 10, stored %d", i, got)
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged sets were not stored", lost, rounds)
	}
}

// TestConsumeRightAfterAGrantBehindTheAPIsBack: a user refused at 0 is given credits with
// kubectl and consumes again at once. The refusal just before spent the second's
// confirmation read, so only waiting for the watch can show the grant.
func TestConsumeRightAfterAGrantBehindTheAPIsBack(t *testing.T) {
	user := "user_GrantBehind1"
	tok := tokenFor(t, user)
	for i := range 20 {
		expectCall(t, "set 0", "POST", tok, `{"credits":0}`, 200, `{"success":true,"credits":0}`)
		if status, body := request(t, "POST", apiURL+"/consume", tok, ""); status != 402 || body != `{"error":"Insufficient credits","credits":0}` {
			t.Fatalf("round %d: consume at 0: %d %s", i, status, body)
		}
		rawSet(t, user, 3)
		if status, body := request(t, "POST", apiURL+"/consume", tok, ""); status != 200 || body != `{"success":true,"credits":2}` {
			t.Fatalf("round %d: consume right after kubectl set 3: %d %s", i, status, body)
		}
	}
}

// TestRefusalsSeeWhatTheOtherReplicaJustDid: replica B has just confirmed a refusal for a
// user (its read for the second is spent); the user then gets credits, or a hold, through
// replica A and at once consumes, or captures the hold, on B. B must not answer from a
// cache that has not shown A's write yet: no 402 with credits stored, no 404 for a hold
// that exists.
func TestRefusalsSeeWhatTheOtherReplicaJustDid(t *testing.T) {
	bases := twoReplicas(t)
	admin := serviceAccountToken(t, "refusal-admin", "credits-admin")
	user := "user_RefusalRace1"
	on := func(replica int, path string) string { return creditsURL(bases[replica], path, user) }
	for round := range 20 {
		if status, body := request(t, "POST", on(0, "/api/credits"), admin, `{"credits":0}`); status != 200 {
			t.Fatalf("set 0: %d %s", status, body)
		}
		waitBalance(t, bases, admin, user, `{"credits":0}`)
		if status, _ := request(t, "POST", on(1, "/api/credits/consume"), admin, ""); status != 402 {
			t.Fatalf("round %d: consume at 0 on B: %d", round, status)
		}
		if status, body := request(t, "POST", on(0, "/api/credits"), admin, `{"credits":5}`); status != 200 {
			t.Fatalf("set 5 on A: %d %s", status, body)
		}
		if status, body := request(t, "POST", on(1, "/api/credits/consume"), admin, ""); status != 200 || body != `{"success":true,"credits":4}` {
			t.Fatalf("round %d: consume on B right after set 5 on A: %d %s", round, status, body)
		}
		status, hold, _ := reserveAs(t, bases[0], admin, "?userId="+user, `{"credits":1}`)
		if status != 200 {
			t.Fatalf("round %d: reserve on A: %d", round, status)
		}
		if status, body := request(t, "POST", bases[1]+"/api/credits/reservations/"+hold.ReservationID+"/capture?userId="+user, admin, ""); status != 200 || body != `{"success":true,"credits":3}` {
			t.Fatalf("round %d: capture on B of the hold A just made: %d %s", round, status, body)
		}
	}
}

// TestGrantKeyOutlivesOtherKeyedTraffic: a user's own keyed consumes never push a
// checkout's grant key out, so the checkout's retry never grants again.
func TestGrantKeyOutlivesOtherKeyedTraffic(t *testing.T) {
	user := "user_GrantKey1"
	admin := serviceAccountToken(t, "grant-key-admin", "credits-admin")
	grant := creditsURL(apiBase, "/api/credits/grant", user)
	const checkout = "cs_test_b1c2d3e4f5"
	if status, body := request(t, "POST", grant, admin, `{"credits":1000}`, "Idempotency-Key", checkout); status != 200 || body != `{"success":true,"credits":1000}` {
		t.Fatalf("grant: %d %s", status, body)
	}
	tok := tokenFor(t, user)
	for i := range 300 {
		status, body := request(t, "POST", apiURL+"/consume", tok, `{"credits":1}`, "Idempotency-Key", fmt.Sprintf("gen-%d", i))
		if status != 200 {
			t.Fatalf("consume %d: %d %s", i, status, body)
		}
	}
	resp := doRequest(t, "POST", grant, admin, `{"credits":1000}`, "Idempotency-Key", checkout)
	if resp.status != 200 || resp.body != `{"success":true,"credits":1000}` || resp.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retried grant: %d %s (Idempotent-Replayed %q), want the original answer replayed", resp.status, resp.body, resp.header.Get("Idempotent-Replayed"))
	}
	if got := storedBalanceOf(t, user); got != 700 {
		t.Fatalf("stored %d, want 700: the grant was applied twice", got)
	}
	if status, body := request(t, "POST", grant, admin, `{"credits":999}`, "Idempotency-Key", checkout); status != 409 || body != `{"error":"Idempotency-Key reused with a different request"}` {
		t.Fatalf("same key, other amount: %d %s", status, body)
	}
	// The user's own consume with the checkout's key is another request: 409, not a consume.
	if status, body := request(t, "POST", apiURL+"/consume", tok, `{"credits":1}`, "Idempotency-Key", checkout); status != 409 {
		t.Fatalf("consume with a grant's key: %d %s", status, body)
	}
	// The short-lived keys of consumes are still bounded: the oldest were forgotten.
	if status, _ := request(t, "POST", apiURL+"/consume", tok, `{"credits":1}`, "Idempotency-Key", "gen-0"); status != 200 {
		t.Fatalf("consume key gen-0 after 300 newer keys: %d", status)
	}
	if got := storedBalanceOf(t, user); got != 699 {
		t.Fatalf("stored %d, want 699", got)
	}
}

// TestInvalidUserIDsAreRefused: user IDs that are not valid UTF-8, hold control characters
// or whitespace, or are too long are 400 and never stored, from either kind of caller.
func TestInvalidUserIDsAreRefused(t *testing.T) {
	admin := serviceAccountToken(t, "userid-admin", "credits-admin")
	before := snapshot(t)
	raw := []string{"%FF", "user%00x", "user%0Ax", "user%20x", "user%09x", "user%C2%A0x", "user%E2%80%8Bx", "%ED%A0%80",
		strings.Repeat("a", 256), "a&userId=b", "%zz"}
	for _, q := range raw {
		for _, path := range []string{"/api/credits", "/api/credits/grant", "/api/credits/consume"} {
			u := apiBase + path + "?userId=" + q
			status, got := request(t, "POST", u, admin, `{"credits":5}`, "Idempotency-Key", "bad-id-"+url.QueryEscape(path+q))
			if status != 400 || got != `{"error":"Invalid userId"}` {
				t.Errorf("%s userId=%q: %d %s", path, q, status, got)
			}
			if status, got := request(t, "GET", apiBase+"/api/credits?userId="+q, admin, ""); status != 400 || got != `{"error":"Invalid userId"}` {
				t.Errorf("GET userId=%q: %d %s", q, status, got)
			}
		}
	}
	for _, sub := range []string{"user\x00x", "user\nx", "user x", "\xff", strings.Repeat("u", 256)} {
		tok, err := signer.SessionToken(sub, 60e9)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"GET", "POST"} {
			if status, got := call(t, m, tok, `{"credits":5}`); status != 400 || got != `{"error":"Invalid userId"}` {
				t.Errorf("%s as Clerk sub %q: %d %s", m, sub, status, got)
			}
		}
	}
	expectUnchanged(t, before)
	// The longest valid ID, with non-ASCII letters, is accepted.
	long := "user_é" + strings.Repeat("x", 255-len("user_é"))
	if status, got := request(t, "POST", apiBase+"/api/credits/grant?userId="+url.QueryEscape(long), admin, `{"credits":5}`, "Idempotency-Key", "long-id"); status != 200 {
		t.Fatalf("255-byte user ID: %d %s", status, got)
	}
}

// response is one HTTP answer with its headers.
type response struct {
	status int
	body   string
	header http.Header
}

// doRequest is request with the response headers.
func doRequest(t *testing.T, method, url, token, body string, header ...string) response {
	t.Helper()
	var r response
	status, got := requestWith(t, method, url, token, body, &r.header, header...)
	r.status, r.body = status, got
	return r
}
