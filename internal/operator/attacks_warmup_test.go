package operator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// A replica warms up when it serves before its informer has listed every UserCredits
// (readiness does not wait for that list: at 100,000 users it takes tens of seconds). The
// tests below make one such replica the least artificial way the public surface allows:
// the operator, as operator.New assembles it, talks to the real apiserver through a proxy
// that holds the informer's first list (as a large namespace or a loaded apiserver would)
// and passes everything else. Nothing in the operator is told it is being tested.

// warmingReplica starts a replica whose informer's first list is held for the test's
// duration, and checks that the list did reach the proxy (the replica is warming up).
func warmingReplica(t *testing.T) (string, *apiserverProxy) {
	t.Helper()
	proxy := newAPIServerProxy(t, true, 0)
	base, _ := proxiedReplica(t, proxy)
	deadline := time.Now().Add(10 * time.Second)
	for proxy.listsWereHeld() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the replica's informer never asked for its first list")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return base, proxy
}

// TestAttackWarmUpServesDuplicatedUser (issue 19 §2, attack 4): two objects claim one user,
// one under the name the API gives it (10 credits), one a GitOps tool named (5). A synced
// replica refuses to serve or change them (TestConflictingRecordsAreNeitherServedNorChanged);
// before the fix, a warming replica read the API-named object by name, trusted it, served
// 10 and let a consume of 3 change it. Untrusted records are never served, during warm-up
// too: the contract's 500 bodies, and nothing changes.
func TestAttackWarmUpServesDuplicatedUser(t *testing.T) {
	ctx := context.Background()
	user := "user_AttackWarmTwice1"
	for name, balance := range map[string]int64{account.ObjectNameForUser(user): 10, "attack-warm-twice-gitops": 5} {
		obj := &creditsv1alpha1.UserCredits{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace},
			Spec:       creditsv1alpha1.UserCreditsSpec{UserID: user, Credits: balance},
		}
		if err := k8sClient.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), obj) })
	}
	base, _ := warmingReplica(t)
	tok := tokenFor(t, user)
	before := snapshot(t)
	if status, body := request(t, "GET", base+"/api/credits", tok, ""); status != 500 || body != `{"error":"Error fetching credits"}` {
		t.Errorf("GET during warm-up: %d %s, want 500 {\"error\":\"Error fetching credits\"}", status, body)
	}
	if status, body := request(t, "POST", base+"/api/credits/consume", tok, `{"credits":3}`); status != 500 || body != `{"error":"Error updating credits"}` {
		t.Errorf("consume 3 during warm-up: %d %s, want 500 {\"error\":\"Error updating credits\"}", status, body)
	}
	if status, body := request(t, "GET", base+"/api/credits/transactions", tok, ""); status != 500 || body != `{"error":"Error fetching credits"}` {
		t.Errorf("history during warm-up: %d %s, want 500 {\"error\":\"Error fetching credits\"}", status, body)
	}
	expectUnchanged(t, before)
}

// readBudget is how many reads of one user's object "at most one a second" allows over
// elapsed: one for each second begun.
func readBudget(elapsed time.Duration) int { return int(elapsed/time.Second) + 1 }

// TestAttackWarmUpReadsPerUser (issue 19 §2, attack 5): during warm-up, a user with no
// record costs the apiserver at most one read a second. Before the fix, nothing was
// remembered about a user found to have no record: each of 10 balance reads cost a GET
// and a list by spec.userID (which scans the namespace), and the lists drained the warm-up
// budget shared by all users, so another user's first read then waited for it (~200 ms).
func TestAttackWarmUpReadsPerUser(t *testing.T) {
	base, proxy := warmingReplica(t)
	user, other := "user_AttackWarmNone1", "user_AttackWarmNone2"
	tok := tokenFor(t, user)
	start := time.Now()
	for i := range 10 {
		if status, body := request(t, "GET", base+"/api/credits", tok, ""); status != 200 || body != `{"credits":0}` {
			t.Fatalf("GET %d during warm-up: %d %s", i, status, body)
		}
	}
	elapsed := time.Since(start)
	gets, lists := proxy.reads(account.ObjectNameForUser(user), user)
	t.Logf("10 balance reads of a user with no record in %v cost %d GETs and %d lists", elapsed.Round(time.Millisecond), gets, lists)
	if budget := readBudget(elapsed); gets > budget || lists > budget {
		t.Errorf("10 balance reads in %v cost %d GETs and %d lists naming the user; at most %d of each (one a second)", elapsed.Round(time.Millisecond), gets, lists, budget)
	}

	otherTok := tokenFor(t, other)
	start = time.Now()
	if status, body := request(t, "GET", base+"/api/credits", otherTok, ""); status != 200 || body != `{"credits":0}` {
		t.Fatalf("another user's first GET during warm-up: %d %s", status, body)
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("another user's first read during warm-up took %v: it waited for a budget the first user's repeated reads drained", took.Round(time.Millisecond))
	}
}

// TestAttackTransactionsReadsPerUser (issue 19 §2, attack 5): reading the history costs the
// apiserver at most one read of the user's object a second, however often it is asked for
// (before the fix: one GET per request), and a user's own write is still in their next
// history read on the replica that wrote it.
func TestAttackTransactionsReadsPerUser(t *testing.T) {
	proxy := newAPIServerProxy(t, false, 0)
	base, synced := proxiedReplica(t, proxy)
	if !synced(30 * time.Second) {
		t.Fatal("the replica never synced")
	}
	user := "user_AttackHistoryReads1"
	name := account.ObjectNameForUser(user)
	tok := tokenFor(t, user)
	if status, body := request(t, "POST", base+"/api/credits", tok, `{"credits":50}`); status != 200 {
		t.Fatalf("set: %d %s", status, body)
	}
	url := base + "/api/credits/transactions"
	for round := range 3 {
		getsBefore, _ := proxy.reads(name, user)
		start := time.Now()
		for i := range 20 {
			if status, _ := readHistory(t, url, tok); status != 200 {
				t.Fatalf("round %d: history read %d: %d", round, i, status)
			}
			time.Sleep(45 * time.Millisecond)
		}
		elapsed := time.Since(start)
		gets, _ := proxy.reads(name, user)
		t.Logf("round %d: 20 history reads in %v cost %d GETs", round, elapsed.Round(time.Millisecond), gets-getsBefore)
		if budget := readBudget(elapsed); gets-getsBefore > budget {
			t.Errorf("round %d: 20 history reads in %v cost %d GETs of the user's object; at most %d (one a second)", round, elapsed.Round(time.Millisecond), gets-getsBefore, budget)
		}
		// The user's own write is in their next read.
		want := int64(50 - round - 1)
		if status, body := request(t, "POST", base+"/api/credits/consume", tok, ""); status != 200 || body != fmt.Sprintf(`{"success":true,"credits":%d}`, want) {
			t.Fatalf("round %d: consume: %d %s", round, status, body)
		}
		status, h := readHistory(t, url, tok)
		if status != 200 || len(h.Transactions) != round+2 || h.Transactions[0].Type != "consume" || h.Transactions[0].Balance != want {
			got, _ := json.Marshal(h.Transactions)
			t.Fatalf("round %d: the history right after the user's consume: %d %s; want the consume (balance %d) first of %d", round, status, got, want, round+2)
		}
	}
}
