package operator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// TestAttack2OversizedHistoryChunkErasesTheChunkBeingFilled: one history chunk that is
// not the one being filled is edited by hand past its bound (4 KiB). The informer cache's
// form of the record keeps the chunk being filled only while the whole history decodes
// without damage (account.CacheForm); with damage elsewhere it drops it, and the next
// change, decided on the cache, writes the chunk being filled anew with its own entry: the
// five intact entries that chunk held are gone, silently. And as the cache's form no longer
// holds the oversized chunk, the controller, which judges that form, never sets
// Intact=False for it (guarantees.md, "Hand edits": the object gets the condition).
func TestAttack2OversizedHistoryChunkErasesTheChunkBeingFilled(t *testing.T) {
	ctx := context.Background()
	user := "user_Attack2Chunk1"
	deleteUserAtEnd(t, user)
	tok := tokenFor(t, user)
	expectCall(t, "set", "POST", tok, `{"credits":100}`, 200, `{"success":true,"credits":100}`)
	for i := range 14 { // 15 entries: chunk 0 full, chunk 1 holds 5
		if status, body := request(t, "POST", apiURL+"/consume", tok, ""); status != 200 || body != fmt.Sprintf(`{"success":true,"credits":%d}`, 99-i) {
			t.Fatalf("consume %d: %d %s", i, status, body)
		}
	}
	url := apiBase + "/api/credits/transactions"
	if status, h := readHistory(t, url, tok); status != 200 || len(h.Transactions) != 15 {
		t.Fatalf("history before the edit: %d, %d entries; want 15", status, len(h.Transactions))
	}

	// kubectl annotate --overwrite credits.gitread.dev/history-0=<5,000 bytes>: chunk 0,
	// full and not being filled, is over its bound.
	obj := statusOf(t, user)
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, account.HistoryChunkAnnotation(0), strings.Repeat("x", 5000))
	if err := k8sClient.Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the primary's watch: milliseconds

	if status, body := request(t, "POST", apiURL+"/consume", tok, ""); status != 200 || body != `{"success":true,"credits":85}` {
		t.Fatalf("consume after the edit: %d %s", status, body)
	}
	// Chunk 0 is damaged (read as empty): what is left is chunk 1, 5 entries, and the consume.
	status, h := readHistory(t, url, tok)
	if status != 200 || len(h.Transactions) != 6 {
		var got []string
		for _, e := range h.Transactions {
			got = append(got, fmt.Sprintf("%s %d → %d", e.Type, e.Credits, e.Balance))
		}
		t.Errorf("history after a consume: %d, %d entries %v; want 6: the consume and the 5 intact entries of the chunk it was appended to", status, len(h.Transactions), got)
	}
	var intact *string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if c := meta.FindStatusCondition(statusOf(t, user).Status.Conditions, creditsv1alpha1.ConditionIntact); c != nil {
			s := string(c.Status) + "/" + c.Reason
			intact = &s
			break
		}
	}
	if intact == nil {
		t.Errorf("a history chunk over its bound: no Intact condition on the object within 5 s; want Intact=False/%s", creditsv1alpha1.ReasonDamagedParts)
	}
}
