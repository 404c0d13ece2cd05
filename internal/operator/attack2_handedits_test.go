package operator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// handEdit merge-patches user's object as kubectl edit, annotate or patch would, and
// gives the operator's watch a moment.
func handEdit(t *testing.T, user string, patch map[string]any) {
	t.Helper()
	data, _ := json.Marshal(patch)
	if err := k8sClient.Patch(context.Background(), statusOf(t, user), client.RawPatch(types.MergePatchType, data)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
}

// deleteUserAtEnd deletes user's object, under the API's name, when the test ends.
func deleteUserAtEnd(t *testing.T, user string) {
	t.Cleanup(func() {
		obj := &creditsv1alpha1.UserCredits{}
		obj.Namespace, obj.Name = testNamespace, account.ObjectNameForUser(user)
		_ = k8sClient.Delete(context.Background(), obj)
	})
}

// TestAttack2UnreadableHistoryChunkHidesNewEntries: a history chunk edited by hand into
// text that is not entries ("x;y;z" in place of the one entry it held). It is not read as
// empty: the next changes are appended after the garbage, at positions the reader does not
// look at (an entry's place in its chunk is its number in the count), so the history answers
// none of the two consumes just made, and it is never reported (no Intact=False, no Warning
// Event). guarantees.md, "Hand edits": a part that cannot be read is read as empty, the
// object gets Intact=False, and the next change of the part writes it whole again.
func TestAttack2UnreadableHistoryChunkHidesNewEntries(t *testing.T) {
	user := "user_Attack2Garbled1"
	deleteUserAtEnd(t, user)
	tok := tokenFor(t, user)
	expectCall(t, "set", "POST", tok, `{"credits":10}`, 200, `{"success":true,"credits":10}`)
	handEdit(t, user, map[string]any{"metadata": map[string]any{"annotations": map[string]string{account.HistoryChunkAnnotation(0): "x;y;z"}}})
	// Reported while it is there: the consumes below write the chunk whole again, after
	// which the condition goes (the controller's Repaired Event).
	intact := func() *metav1.Condition {
		return meta.FindStatusCondition(statusOf(t, user).Status.Conditions, creditsv1alpha1.ConditionIntact)
	}
	c := intact()
	for deadline := time.Now().Add(5 * time.Second); c == nil && time.Now().Before(deadline); c = intact() {
		time.Sleep(100 * time.Millisecond)
	}
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != creditsv1alpha1.ReasonDamagedParts {
		t.Errorf("a history chunk that cannot be read (\"x;y;z\"): Intact is %v within 5 s; want Intact=False/%s", c, creditsv1alpha1.ReasonDamagedParts)
	}
	for _, want := range []string{`{"success":true,"credits":9}`, `{"success":true,"credits":8}`} {
		if status, body := request(t, "POST", apiURL+"/consume", tok, ""); status != 200 || body != want {
			t.Fatalf("consume: %d %s, want %s", status, body, want)
		}
	}
	status, h := readHistory(t, apiBase+"/api/credits/transactions", tok)
	var got []string
	for _, e := range h.Transactions {
		got = append(got, fmt.Sprintf("%s %d → %d", e.Type, e.Credits, e.Balance))
	}
	if status != 200 || len(got) < 2 || got[0] != "consume 1 → 8" || got[1] != "consume 1 → 9" {
		t.Errorf("history after two consumes on a garbled chunk: %d %v; want the two consumes first", status, got)
	}
	for deadline := time.Now().Add(5 * time.Second); c != nil && time.Now().Before(deadline); c = intact() {
		time.Sleep(100 * time.Millisecond)
	}
	if c != nil {
		t.Errorf("the garbled chunk written whole again by the next change (%q): Intact is still %v", statusOf(t, user).Annotations[account.HistoryChunkAnnotation(0)], c)
	}
}

// TestAttack2ForgedCacheDigestAnnotation: the informer cache's stand-in for the grant
// ledger, cache.credits.gitread.dev/grant-key-digest, "exists only in the informer cache,
// never in the apiserver". Decode trusts it wherever it finds it: on an object read from
// the apiserver that carries it (kubectl annotate), the record read whole is taken for the
// cache's partial form. Every keyed grant of the user (a Stripe purchase) is then a 500 for
// good, with nothing on the object to say why (Valid=True, no Intact, no Warning Event), and
// a consume that reuses a grant's key is applied instead of refused (409).
//
// The forged annotation is the name the cache's form used when the attack was found; the
// key that marks that form now (account.GrantKeyDigestAnnotation) is no annotation the
// apiserver stores, which the test checks too.
func TestAttack2ForgedCacheDigestAnnotation(t *testing.T) {
	user := "user_Attack2Digest1"
	deleteUserAtEnd(t, user)
	admin := serviceAccountToken(t, "attack2-admin", "credits-admin")
	grant := func(key string) (int, string) {
		return request(t, "POST", creditsURL(apiBase, "/api/credits/grant", user), admin, `{"credits":10}`, "Idempotency-Key", key)
	}
	if status, body := grant("cs_attack2_digest_1"); status != 200 || body != `{"success":true,"credits":10}` {
		t.Fatalf("first grant: %d %s", status, body)
	}
	forge := func(name string) error {
		data, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{name: ""}}})
		return k8sClient.Patch(context.Background(), statusOf(t, user), client.RawPatch(types.MergePatchType, data))
	}
	if err := forge(account.GrantKeyDigestAnnotation); !apierrors.IsInvalid(err) {
		t.Errorf("kubectl annotate %q=: %v; want the apiserver to refuse the key (422)", account.GrantKeyDigestAnnotation, err)
	}
	handEdit(t, user, map[string]any{"metadata": map[string]any{"annotations": map[string]string{"cache.credits.gitread.dev/grant-key-digest": ""}}})
	if status, body := grant("cs_attack2_digest_2"); status != 200 || body != `{"success":true,"credits":20}` {
		t.Errorf("a new keyed grant on an object carrying the cache's digest annotation: %d %s; want 200 {\"success\":true,\"credits\":20}", status, body)
	}
	status, body := request(t, "POST", creditsURL(apiBase, "/api/credits/consume", user), admin, `{"credits":10}`, "Idempotency-Key", "cs_attack2_digest_1")
	if status != 409 {
		t.Errorf("a consume reusing a grant's key: %d %s; want 409 {\"error\":\"Idempotency-Key reused with a different request\"}", status, body)
	}
}

// TestAttack2UntrustedRecordIsShownValid: a record the API refuses to serve or change
// because it breaks the account's invariants (a balance of 2^53, over the largest, set with
// kubectl when the CRD had no maximum) is shown by the controller as Valid=True,
// "balance of 9007199254740992 credits accepted", and status.credits takes the balance
// the API rejects ("status.credits: the last balance the controller accepted; a rejected
// balance never reaches it"). kubectl get uc says VALID True for a user every request of
// whom answers 500. The schema now refuses a balance over the largest, so the record is
// made untrusted the way it still admits: the largest balance plus a hold of one credit
// (available and held together over the largest).
func TestAttack2UntrustedRecordIsShownValid(t *testing.T) {
	user := "user_Attack2Untrusted1"
	deleteUserAtEnd(t, user)
	tok := tokenFor(t, user)
	expectCall(t, "set", "POST", tok, `{"credits":10}`, 200, `{"success":true,"credits":10}`)
	// The balance the controller accepted last must be 10 before the hand edit: the
	// attack's claim is about what status shows after it.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if obj := statusOf(t, user); obj.Status.ObservedGeneration == obj.Generation && obj.Status.Credits == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the controller never accepted the balance of 10: %+v", statusOf(t, user).Status)
		}
	}
	over := []byte(fmt.Sprintf(`{"spec":{"credits":%d}}`, int64(account.MaxBalance)+1))
	if err := k8sClient.Patch(context.Background(), statusOf(t, user), client.RawPatch(types.MergePatchType, over)); !apierrors.IsInvalid(err) {
		t.Errorf("a balance of 2^53 written by hand: %v; want the schema to refuse it (Invalid)", err)
	}
	handEdit(t, user, map[string]any{"spec": map[string]any{"credits": int64(account.MaxBalance), "reservations": []map[string]any{
		{"id": "attack2-over", "credits": 1, "expiresAt": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}}}})
	if status, body := call(t, "GET", tok, ""); status != 500 {
		t.Fatalf("GET of a balance with holds over 2^53-1: %d %s; the API serves it (the attack assumes it refuses, as guarantees.md says)", status, body)
	}
	var valid *string
	var credits int64
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		obj := statusOf(t, user)
		if obj.Status.ObservedGeneration == obj.Generation {
			if c := meta.FindStatusCondition(obj.Status.Conditions, creditsv1alpha1.ConditionValid); c != nil {
				s := string(c.Status) + "/" + c.Reason + ": " + c.Message
				valid, credits = &s, obj.Status.Credits
				break
			}
		}
	}
	if valid == nil || (*valid)[:5] == "True/" || credits != 10 {
		t.Errorf("a record the API refuses (500) is shown as Valid %v with status.credits %d; want Valid=False and status.credits kept at 10", deref(valid), credits)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<none>"
	}
	return *s
}

// TestAttack2DamageMadeWhileNoReplicaRunsIsNeverReported: a part edited by hand while no
// replica runs (a maintenance window, the moment of a one-replica restart). At start the
// controller skips the objects it judges settled (skipSettledOnStart), and it judges
// without the damage (settled passes no Record.Damage to Validate): the damaged object is
// skipped and never gets Intact=False, until something else about it changes.
func TestAttack2DamageMadeWhileNoReplicaRunsIsNeverReported(t *testing.T) {
	ctx := context.Background()
	ns := attackNamespace(t, "attack2-damage-offline")
	user := "user_Attack2Offline1"
	first := namespacedReplica(t, newNamespacedProxy(t, ns, false, 0, 0), ns)
	if !first.synced(30 * time.Second) {
		t.Fatal("the first replica never synced")
	}
	if status, body := request(t, "POST", first.base+"/api/credits", tokenFor(t, user), `{"credits":10}`); status != 200 {
		t.Fatalf("set: %d %s", status, body)
	}
	key := client.ObjectKey{Namespace: ns, Name: account.ObjectNameForUser(user)}
	obj := &creditsv1alpha1.UserCredits{}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if err := k8sClient.Get(ctx, key, obj); err == nil && obj.Status.ObservedGeneration == obj.Generation &&
			meta.IsStatusConditionTrue(obj.Status.Conditions, creditsv1alpha1.ConditionValid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the controller never judged the object: %+v", obj.Status)
		}
	}
	first.stop()

	// kubectl annotate --overwrite credits.gitread.dev/closed-reservations=garbage, no replica running.
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"garbage"}}}`, account.ClosedHoldsAnnotation)
	if err := k8sClient.Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
	second := namespacedReplica(t, newNamespacedProxy(t, ns, false, 0, 0), ns)
	if !second.synced(30 * time.Second) {
		t.Fatal("the second replica never synced")
	}
	var intact *metav1.Condition
	for deadline := time.Now().Add(3 * time.Second); intact == nil && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err := k8sClient.Get(ctx, key, obj); err != nil {
			t.Fatal(err)
		}
		intact = meta.FindStatusCondition(obj.Status.Conditions, creditsv1alpha1.ConditionIntact)
	}
	if intact == nil || intact.Status != metav1.ConditionFalse {
		t.Errorf("closed-reservations edited to garbage while no replica ran: 3 s after a replica started, Intact is %v; want False/%s", intact, creditsv1alpha1.ReasonDamagedParts)
	}
}
