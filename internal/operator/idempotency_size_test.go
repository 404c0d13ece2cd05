package operator_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/operator/options"
	"github.com/gitread/usercredits-operator/test/framework"
)

// sizeID is a Stripe-like ID of length characters: prefix and hex digits.
func sizeID(prefix string, n, length int) string {
	sum := sha256.Sum256([]byte(fmt.Sprint(prefix, n)))
	return (prefix + strings.Repeat(hex.EncodeToString(sum[:]), 2))[:length]
}

// storedJSON is user's object as the apiserver stores it, metadata.managedFields removed,
// and the size of its parts.
func storedJSON(t *testing.T, user string) (size int, parts map[string]int) {
	t.Helper()
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(schema.GroupVersionKind{Group: "credits.gitread.dev", Version: "v1alpha1", Kind: "UserCredits"})
	key := client.ObjectKey{Namespace: testNamespace, Name: account.ObjectNameForUser(user)}
	if err := k8sClient.Get(context.Background(), key, obj); err != nil {
		t.Fatal(err)
	}
	unstructured.RemoveNestedField(obj.Object, "metadata", "managedFields")
	data, err := json.Marshal(obj.Object)
	if err != nil {
		t.Fatal(err)
	}
	parts = map[string]int{}
	for name, path := range map[string][]string{
		"annotations": {"metadata", "annotations"}, "labels": {"metadata", "labels"}, "spec.lots": {"spec", "lots"}, "status": {"status"},
	} {
		v, _, _ := unstructured.NestedFieldNoCopy(obj.Object, path...)
		part, _ := json.Marshal(v)
		parts[name] = len(part)
	}
	return len(data), parts
}

// TestIdempotencyBusyUserStoredSize: issue 22's busy user (12 Stripe purchases keyed by
// their Checkout Session, 80 keyed consumes, 4 holds reserved and captured with keys),
// made through the operator's API and webhook against the apiserver, is stored with the
// operator's annotations within 6 KiB (the JSON lists of the release before made them
// 13.6 KiB); every key still answers, and the first purchase and the 80th consume replay
// as they were answered.
func TestIdempotencyBusyUserStoredSize(t *testing.T) {
	base := extraReplica(t, func(o *options.Options) { o.Stripe.WebhookSecret = stripeSecret })
	user := "user_2NNEqL2nrIRdJ194ndJqAHwSize"
	tok := tokenFor(t, user)
	purchase := func(i int) []byte {
		cs := sizeID("cs_live_a1", i, 66)
		return a21Event("evt_size_"+cs, "checkout.session.completed", map[string]any{"id": cs, "object": "checkout.session",
			"client_reference_id": user, "payment_status": "paid", "mode": "payment", "currency": "usd", "amount_subtotal": 12500,
			"amount_total": 12500, "payment_intent": sizeID("pi_3", i, 27), "metadata": map[string]string{"credits": "100"}})
	}
	for i := range 12 {
		if status, body := deliver(t, base, purchase(i), stripeSecret, time.Now()); status != 200 {
			t.Fatalf("purchase %d: %d %s", i, status, body)
		}
	}
	post := func(path, key, body string) (int, string, http.Header) {
		var h http.Header
		status, got := requestWith(t, "POST", base+"/api/credits"+path, tok, body, &h, "Idempotency-Key", key)
		return status, got, h
	}
	var lastKey, lastAnswer string
	for i := range 80 {
		lastKey = sizeID("", 1000+i, 36)
		status, body, _ := post("/consume", lastKey, `{"credits":5}`)
		if status != 200 {
			t.Fatalf("consume %d: %d %s", i, status, body)
		}
		lastAnswer = body
		if i%20 == 10 {
			status, body, _ := post("/reserve", lastKey+"-r", `{"credits":8}`)
			var held struct{ ReservationID string }
			if status != 200 || json.Unmarshal([]byte(body), &held) != nil {
				t.Fatalf("reserve: %d %s", status, body)
			}
			if status, body, _ := post("/reservations/"+held.ReservationID+"/capture", lastKey+"-c", `{"credits":6}`); status != 200 {
				t.Fatalf("capture: %d %s", status, body)
			}
		}
	}
	const want = 12*100 - 80*5 - 4*6
	framework.Eventually(t, 10*time.Second, func() error { // the controller's status is part of what is stored
		if _, body := call(t, "GET", tok, ""); body != fmt.Sprintf(`{"credits":%d}`, want) {
			return fmt.Errorf("balance %s, want %d", body, want)
		}
		if size, parts := storedJSON(t, user); parts["status"] < 20 {
			return fmt.Errorf("no status yet (%d bytes stored)", size)
		}
		return nil
	})
	size, parts := storedJSON(t, user)
	t.Logf("the busy user is stored as %d bytes without managedFields: %v", size, parts)
	if parts["annotations"] > 6<<10 {
		t.Errorf("the busy user's annotations are %d bytes, over 6 KiB", parts["annotations"])
	}

	// The 80th consume replays byte for byte; the first purchase, redelivered, is a replay.
	status, body, h := post("/consume", lastKey, `{"credits":5}`)
	if status != 200 || body != lastAnswer || h.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the 80th consume again: %d %s (replayed %q), want 200 %s replayed", status, body, h.Get("Idempotent-Replayed"), lastAnswer)
	}
	if status, body, _ := post("/consume", lastKey, `{"credits":6}`); status != 409 || body != `{"error":"Idempotency-Key reused with a different request"}` {
		t.Errorf("the 80th consume's key with another amount: %d %s, want 409", status, body)
	}
	replayed := stripeCount("replayed")
	if status, body := deliver(t, base, purchase(0), stripeSecret, time.Now()); status != 200 || body != `{"received":true}` {
		t.Errorf("the first purchase redelivered: %d %s", status, body)
	}
	if got := stripeCount("replayed"); got != replayed+1 {
		t.Errorf("the first purchase redelivered: %v replays counted, want %v", got, replayed+1)
	}
	if _, body := call(t, "GET", tok, ""); body != fmt.Sprintf(`{"credits":%d}`, want) {
		t.Errorf("after the replays: %s, want %d credits", body, want)
	}
}
