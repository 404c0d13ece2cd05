package payments

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/gitread/usercredits-operator/internal/account"
)

// recordingGranter records grants instead of storing them.
type recordingGranter struct{ ops []account.Operation }

func (r *recordingGranter) Apply(_ context.Context, _ account.UserID, op account.Operation) (account.Result, error) {
	r.ops = append(r.ops, op)
	return account.Result{Credits: op.Amount}, nil
}

func TestCreditsOfASession(t *testing.T) {
	wh := &Webhook{Settings: Settings{PricePerCreditCents: 125}}
	amount := func(n int64) *int64 { return &n }
	for name, c := range map[string]struct {
		s       checkoutSession
		credits int64
		ok      bool
	}{
		"amount_total":            {checkoutSession{ID: "cs", ClientReferenceID: "user_A", AmountTotal: amount(1250)}, 10, true},
		"metadata wins":           {checkoutSession{ID: "cs", ClientReferenceID: "user_A", AmountTotal: amount(1250), Metadata: map[string]string{"credits": "3"}}, 3, true},
		"not a whole credit":      {checkoutSession{ID: "cs", ClientReferenceID: "user_A", AmountTotal: amount(1251)}, 0, false},
		"no amount":               {checkoutSession{ID: "cs", ClientReferenceID: "user_A"}, 0, false},
		"no user":                 {checkoutSession{ID: "cs", AmountTotal: amount(1250)}, 0, false},
		"invalid user":            {checkoutSession{ID: "cs", ClientReferenceID: "user A", AmountTotal: amount(1250)}, 0, false},
		"metadata not a number":   {checkoutSession{ID: "cs", ClientReferenceID: "user_A", Metadata: map[string]string{"credits": "1.5"}}, 0, false},
		"metadata zero":           {checkoutSession{ID: "cs", ClientReferenceID: "user_A", Metadata: map[string]string{"credits": "0"}}, 0, false},
		"metadata above 2^53 - 1": {checkoutSession{ID: "cs", ClientReferenceID: "user_A", Metadata: map[string]string{"credits": "9007199254740992"}}, 0, false},
	} {
		n, reason := wh.credits(c.s)
		if n != c.credits || (reason == "") != c.ok {
			t.Errorf("%s: %d %q, want %d ok=%v", name, n, reason, c.credits, c.ok)
		}
	}
}

func TestUnassignableSessionIsLoggedWithItsID(t *testing.T) {
	var logged strings.Builder
	store := &recordingGranter{}
	wh := &Webhook{Settings: Settings{WebhookSecret: "whsec_x", PricePerCreditCents: 125}, Store: store,
		Log: funcr.New(func(prefix, args string) { logged.WriteString(args + "\n") }, funcr.Options{})}
	payload := []byte(`{"id":"evt_9","object":"event","type":"checkout.session.completed","data":{"object":{"id":"cs_live_lost","payment_status":"paid","amount_total":1250}}}`)
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: "whsec_x", Timestamp: time.Now()})
	req := httptest.NewRequest("POST", "/api/webhooks/stripe", strings.NewReader(string(payload)))
	req.Header.Set("Stripe-Signature", signed.Header)
	rec := httptest.NewRecorder()
	wh.ServeHTTP(rec, req)
	if rec.Code != 200 || len(store.ops) != 0 {
		t.Fatalf("unassignable session: %d, %d grants", rec.Code, len(store.ops))
	}
	if !strings.Contains(logged.String(), `"session"="cs_live_lost"`) || !strings.Contains(logged.String(), "client_reference_id") {
		t.Fatalf("the Error log does not name the session and the reason:\n%s", logged.String())
	}
}

// TestPaidSessionIsAGrantRecordedAsItsPurchase: the webhook's operation is a grant keyed by
// the session (exactly once, the grant ledger) that names the session as its purchase.
func TestPaidSessionIsAGrantRecordedAsItsPurchase(t *testing.T) {
	store := &recordingGranter{}
	wh := &Webhook{Settings: Settings{WebhookSecret: "whsec_x", PricePerCreditCents: 125}, Store: store, Log: funcr.New(func(string, string) {}, funcr.Options{})}
	for _, id := range []string{"cs_test_a1B2", "cs_test_1;g,5,5,1"} {
		payload := []byte(`{"id":"evt_1","object":"event","type":"checkout.session.completed","data":{"object":{"id":"` + id + `","client_reference_id":"user_A","payment_status":"paid","amount_total":1250}}}`)
		signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: "whsec_x", Timestamp: time.Now()})
		req := httptest.NewRequest("POST", "/api/webhooks/stripe", strings.NewReader(string(payload)))
		req.Header.Set("Stripe-Signature", signed.Header)
		rec := httptest.NewRecorder()
		wh.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("%s: %d %s", id, rec.Code, rec.Body)
		}
	}
	want := account.Operation{Kind: account.OpGrant, Amount: 10, IdempotencyKey: "stripe-checkout:cs_test_a1B2", Purchase: "cs_test_a1B2"}
	if len(store.ops) != 1 || store.ops[0] != want {
		t.Fatalf("operations %+v, want only %+v (a session ID that is no Stripe ID is unassignable)", store.ops, want)
	}
}
