package httpapi

import (
	"net/http"
	"testing"

	"github.com/go-logr/logr"

	"github.com/gitread/usercredits-operator/internal/payments"
)

// TestStripeWebhookIsARouteLikeAnyOther: the webhook's path is in the route table. Another
// method gets the 405 every route gives (Allow: POST, the same body and headers), a handler
// without a webhook answers 404 there whatever the method, and a POST reaches the webhook
// without Clerk or ServiceAccount authentication (it checks Stripe's signature itself).
func TestStripeWebhookIsARouteLikeAnyOther(t *testing.T) {
	store := &memoryStore{balances: map[string]int64{}}
	hook := &payments.Webhook{Settings: payments.Settings{WebhookSecret: "whsec_route", PricePerCreditCents: 125, CheckoutCurrency: "usd"}, Store: store, Log: logr.Discard()}
	with := mustHandler(t, Options{Settings: testSettings(nil), Store: store, StripeWebhook: hook, Log: logr.Discard()})
	without := mustHandler(t, Options{Settings: testSettings(nil), Store: store, Log: logr.Discard()})

	routes405 := serveTimes(with, 1, http.MethodGet, "/api/credits/consume", "", nil)
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		rec := serveTimes(with, 1, method, StripeWebhookPath, "", nil)
		if rec.Code != 405 || rec.Header().Get("Allow") != "POST" || rec.Body.String() != routes405.Body.String() {
			t.Errorf("%s with a webhook: %d Allow=%q %s, want 405 Allow=POST %s", method, rec.Code, rec.Header().Get("Allow"), rec.Body, routes405.Body)
		}
		for _, h := range []string{"Content-Type", "Content-Length", "Cache-Control"} {
			if got, want := rec.Header().Get(h), routes405.Header().Get(h); got != want {
				t.Errorf("%s with a webhook: %s %q, another route's 405 has %q", method, h, got, want)
			}
		}
		if rec := serveTimes(without, 1, method, StripeWebhookPath, "", nil); rec.Code != 404 || rec.Body.String() != `{"error":"Not found"}` {
			t.Errorf("%s without a webhook: %d %s, want 404", method, rec.Code, rec.Body)
		}
	}
	if rec := serveTimes(with, 1, http.MethodPost, StripeWebhookPath, "{}", nil); rec.Code != 400 || rec.Body.String() != `{"error":"Invalid signature"}` ||
		rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("unsigned POST: %d %s %v, want the webhook's 400 (not the API's 401), written like every answer", rec.Code, rec.Body, rec.Header())
	}
	if rec := serveTimes(without, 1, http.MethodPost, StripeWebhookPath, "{}", nil); rec.Code != 404 {
		t.Errorf("POST without a webhook: %d, want 404", rec.Code)
	}
}
