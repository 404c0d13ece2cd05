package httpapi

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/auth"
)

// openAPICases are the requests TestOpenAPIDocumentMatchesTheHandler sends: together they
// reach every status docs/openapi.yaml documents.
func openAPICases(t *testing.T, signer *auth.Signer) []openAPICase {
	tok, err := signer.SessionToken("user_A", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clerk := []string{"Authorization", "Bearer " + tok}
	svc := func(name string, more ...string) []string {
		return append([]string{"Authorization", "Bearer svc-" + name}, more...)
	}
	hold := "/api/credits/reservations/rsv_0123456789abcdef/"
	lot := "/api/credits/grants/lot_0123456789abcdef/"
	var cases []openAPICase
	// Every route answers these the same way: admission (a ServiceAccount must name the
	// user) and, for any other method, 405 with the path's methods in Allow.
	for _, r := range []struct{ op, method, path string }{
		{"getCredits", "GET", "/api/credits"}, {"setCredits", "POST", "/api/credits"}, {"consume", "POST", "/api/credits/consume"},
		{"grant", "POST", "/api/credits/grant"}, {"reserve", "POST", "/api/credits/reserve"}, {"capture", "POST", hold + "capture"},
		{"release", "POST", hold + "release"}, {"transactions", "GET", "/api/credits/transactions"},
		{"grants", "GET", "/api/credits/grants"}, {"void", "POST", lot + "void"},
	} {
		key := []string{"Idempotency-Key", "k1"}
		cases = append(cases,
			openAPICase{op: r.op, method: r.method, path: r.path, body: `{"credits":1}`, status: 401},
			openAPICase{op: r.op, method: r.method, path: r.path + "?userId=user_A", header: svc("nobody", key...), body: `{"credits":1}`, status: 403},
			openAPICase{op: r.op, method: r.method, path: r.path, header: clerk, body: `{"credits":1}`, rateLimit: 1, repeat: 2, status: 429, userWrites: true},
			openAPICase{op: r.op, method: r.method, path: r.path + "?userId=%FF", header: svc("admin", key...), body: `{"credits":1}`, status: 400},
			openAPICase{op: r.op, method: r.method, path: r.path, header: svc("admin", key...), body: `{"credits":1}`, status: 400, wantBody: `{"error":"Missing userId"}`},
			openAPICase{op: r.op, method: "PUT", path: r.path, header: clerk, status: 405},
			openAPICase{op: r.op, method: "DELETE", path: r.path, status: 405},
		)
	}
	tooLarge := `{"credits":1,"pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	store500 := fmt.Errorf("etcd timeout")
	return append(cases,
		openAPICase{op: "getCredits", method: "GET", path: "/api/credits", header: clerk, status: 200},
		openAPICase{op: "getCredits", method: "GET", path: "/api/credits", header: clerk, storeErr: store500, status: 500},
		openAPICase{op: "setCredits", method: "POST", path: "/api/credits", header: clerk, body: `{"credits":7}`, userWrites: true, status: 200},
		openAPICase{op: "setCredits", method: "POST", path: "/api/credits", header: clerk, body: `{"credits":7}`, status: 403},
		openAPICase{op: "setCredits", method: "POST", path: "/api/credits", header: clerk, body: `{"credits":"7"}`, userWrites: true, status: 400},
		openAPICase{op: "setCredits", method: "POST", path: "/api/credits", header: clerk, body: `{"credits":1,"pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, userWrites: true, status: 413},
		openAPICase{op: "setCredits", method: "POST", path: "/api/credits", header: append(clerk, "Idempotency-Key", "k"), body: `{"credits":7}`, userWrites: true, storeErr: account.ErrIdempotencyKeyReused, status: 409},
		openAPICase{op: "setCredits", method: "POST", path: "/api/credits", header: clerk, body: `{"credits":7}`, userWrites: true, storeErr: store500, status: 500},
		openAPICase{op: "consume", method: "POST", path: "/api/credits/consume", header: clerk, result: account.Result{Credits: 4}, status: 200},
		openAPICase{op: "consume", method: "POST", path: "/api/credits/consume", header: clerk, body: `{"credits":0}`, status: 400},
		openAPICase{op: "consume", method: "POST", path: "/api/credits/consume", header: clerk, storeErr: account.ErrInsufficientCredits, status: 402},
		openAPICase{op: "consume", method: "POST", path: "/api/credits/consume", header: append(clerk, "Idempotency-Key", "k"), storeErr: account.ErrIdempotencyKeyReused, status: 409},
		openAPICase{op: "consume", method: "POST", path: "/api/credits/consume", header: clerk, body: `{"credits":1,"pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, status: 413},
		openAPICase{op: "consume", method: "POST", path: "/api/credits/consume", header: clerk, storeErr: store500, status: 500},
		openAPICase{op: "grant", method: "POST", path: "/api/credits/grant?userId=user_A", header: svc("admin", "Idempotency-Key", "cs_1"), body: `{"credits":5}`, result: account.Result{Credits: 10}, status: 200},
		openAPICase{op: "grant", method: "POST", path: "/api/credits/grant?userId=user_A", header: svc("admin"), body: `{"credits":5}`, status: 400},
		openAPICase{op: "grant", method: "POST", path: "/api/credits/grant?userId=user_A", header: svc("admin", "Idempotency-Key", "cs_1"), body: `{"credits":5}`, storeErr: account.ErrIdempotencyKeyReused, status: 409},
		openAPICase{op: "grant", method: "POST", path: "/api/credits/grant?userId=user_A", header: svc("admin", "Idempotency-Key", "cs_1"), body: `{"credits":5}`, storeErr: store500, status: 500},
		openAPICase{op: "grant", method: "POST", path: "/api/credits/grant?userId=user_A", header: svc("admin", "Idempotency-Key", "cs_1"), body: tooLarge, status: 413},
		openAPICase{op: "grant", method: "POST", path: "/api/credits/grant?userId=user_A", header: svc("admin", "Idempotency-Key", "promo-1"), body: `{"credits":50,"expiresAt":"2099-01-31T00:00:00Z","priority":10,"reason":"launch promotion"}`, result: account.Result{Credits: 55}, status: 200},
		openAPICase{op: "grant", method: "POST", path: "/api/credits/grant?userId=user_A", header: svc("admin", "Idempotency-Key", "cs_1"), body: `{"credits":5,"expiresAt":"2020-01-01T00:00:00Z"}`, storeErr: account.ErrGrantExpired, status: 400, wantBody: `{"error":"Invalid expiresAt"}`},
		openAPICase{op: "grant", method: "POST", path: "/api/credits/grant?userId=user_A", header: svc("admin", "Idempotency-Key", "cs_1"), body: `{"credits":5,"priority":101}`, status: 400, wantBody: `{"error":"Invalid priority"}`},
		openAPICase{op: "grant", method: "POST", path: "/api/credits/grant?userId=user_A", header: svc("admin", "Idempotency-Key", "cs_1"), body: `{"credits":5,"reason":"` + strings.Repeat("r", 257) + `"}`, status: 400, wantBody: `{"error":"Invalid reason"}`},
		openAPICase{op: "grant", method: "POST", path: "/api/credits/grant?userId=user_A", header: svc("admin", "Idempotency-Key", "cs_1"), body: `{"credits":5,"note":"x"}`, status: 400, wantBody: `{"error":"Invalid credits value"}`},
		openAPICase{op: "grant", method: "POST", path: "/api/credits/grant?userId=user_A", header: svc("admin", "Idempotency-Key", "cs_1"), body: `{"credits":5}`, storeErr: account.ErrTooManyLots, status: 409, wantBody: `{"error":"Too many open grants"}`},
		openAPICase{op: "grants", method: "GET", path: "/api/credits/grants", header: clerk, status: 200},
		openAPICase{op: "grants", method: "GET", path: "/api/credits/grants?userId=user_A", header: svc("admin"), status: 200},
		openAPICase{op: "grants", method: "GET", path: "/api/credits/grants", header: clerk, storeErr: store500, status: 500},
		openAPICase{op: "void", method: "POST", path: lot + "void?userId=user_A", header: svc("admin"), result: account.Result{Credits: 7}, status: 200},
		openAPICase{op: "void", method: "POST", path: lot + "void?userId=user_A", header: svc("admin", "Idempotency-Key", "void-1"), body: "{}", result: account.Result{Credits: 7}, status: 200},
		openAPICase{op: "void", method: "POST", path: lot + "void?userId=user_A", header: svc("admin"), body: `{"credits":1}`, status: 400, wantBody: `{"error":"Invalid credits value"}`},
		openAPICase{op: "void", method: "POST", path: lot + "void?userId=user_A", header: svc("admin", "Idempotency-Key", "a b"), status: 400, wantBody: `{"error":"Invalid Idempotency-Key"}`},
		openAPICase{op: "void", method: "POST", path: lot + "void?userId=user_A", header: clerk, status: 403},
		openAPICase{op: "void", method: "POST", path: lot + "void?userId=user_A", header: svc("admin"), storeErr: account.ErrLotNotFound, status: 404, wantBody: `{"error":"Grant not found"}`},
		openAPICase{op: "void", method: "POST", path: "/api/credits/grants/bad$id/void?userId=user_A", header: svc("admin"), status: 404, wantBody: `{"error":"Grant not found"}`},
		openAPICase{op: "void", method: "POST", path: lot + "void?userId=user_A", header: svc("admin"), storeErr: account.ErrLotClosed, status: 409, wantBody: `{"error":"Grant has nothing left"}`},
		openAPICase{op: "void", method: "POST", path: lot + "void?userId=user_A", header: svc("admin", "Idempotency-Key", "void-1"), storeErr: account.ErrIdempotencyKeyReused, status: 409},
		openAPICase{op: "void", method: "POST", path: lot + "void?userId=user_A", header: svc("admin"), body: tooLarge, status: 413},
		openAPICase{op: "void", method: "POST", path: lot + "void?userId=user_A", header: svc("admin"), storeErr: store500, status: 500},
		openAPICase{op: "reserve", method: "POST", path: "/api/credits/reserve", header: clerk, result: account.Result{Credits: 4, ReservationID: "rsv_0123456789abcdef"}, status: 200},
		openAPICase{op: "reserve", method: "POST", path: "/api/credits/reserve", header: clerk, body: `{"ttlSeconds":0}`, status: 400},
		openAPICase{op: "reserve", method: "POST", path: "/api/credits/reserve", header: clerk, storeErr: account.ErrInsufficientCredits, status: 402},
		openAPICase{op: "reserve", method: "POST", path: "/api/credits/reserve", header: clerk, storeErr: account.ErrTooManyReservations, status: 409},
		openAPICase{op: "reserve", method: "POST", path: "/api/credits/reserve", header: clerk, storeErr: store500, status: 500},
		openAPICase{op: "reserve", method: "POST", path: "/api/credits/reserve", header: clerk, body: tooLarge, status: 413},
		openAPICase{op: "capture", method: "POST", path: hold + "capture", header: clerk, body: `{"credits":1}`, result: account.Result{Credits: 6}, status: 200},
		openAPICase{op: "capture", method: "POST", path: hold + "capture", header: clerk, body: `{"credits":-1}`, status: 400},
		openAPICase{op: "capture", method: "POST", path: hold + "capture", header: clerk, storeErr: account.ErrReservationNotFound, status: 404},
		openAPICase{op: "capture", method: "POST", path: hold + "capture", header: clerk, storeErr: account.ErrReservationReleased, status: 409},
		openAPICase{op: "capture", method: "POST", path: hold + "capture", header: clerk, storeErr: account.ErrReservationExpired, status: 410},
		openAPICase{op: "capture", method: "POST", path: hold + "capture", header: clerk, storeErr: store500, status: 500},
		openAPICase{op: "capture", method: "POST", path: hold + "capture", header: clerk, body: tooLarge, status: 413},
		openAPICase{op: "capture", method: "POST", path: "/api/credits/reservations/bad$id/capture", header: clerk, status: 404, wantBody: `{"error":"Reservation not found"}`},
		openAPICase{op: "release", method: "POST", path: hold + "release", header: clerk, result: account.Result{Credits: 6}, status: 200},
		openAPICase{op: "release", method: "POST", path: hold + "release", header: clerk, storeErr: account.ErrReservationNotFound, status: 404},
		openAPICase{op: "release", method: "POST", path: hold + "release", header: clerk, storeErr: account.ErrReservationCaptured, status: 409},
		openAPICase{op: "release", method: "POST", path: hold + "release", header: clerk, storeErr: account.ErrReservationExpired, status: 410},
		openAPICase{op: "release", method: "POST", path: hold + "release", header: clerk, storeErr: store500, status: 500},
		openAPICase{op: "release", method: "POST", path: hold + "release", header: clerk, body: "{}", result: account.Result{Credits: 6}, status: 200},
		openAPICase{op: "release", method: "POST", path: hold + "release", header: clerk, body: `{"credits":1}`, status: 400, wantBody: `{"error":"Invalid credits value"}`},
		openAPICase{op: "release", method: "POST", path: hold + "release", header: clerk, body: tooLarge, status: 413},
		openAPICase{op: "release", method: "POST", path: "/api/credits/reservations/" + strings.Repeat("a", 65) + "/release", header: clerk, status: 404, wantBody: `{"error":"Reservation not found"}`},
		openAPICase{op: "transactions", method: "GET", path: "/api/credits/transactions", header: clerk, status: 200},
		openAPICase{op: "transactions", method: "GET", path: "/api/credits/transactions", header: clerk, storeErr: store500, status: 500},
		stripeCase(t, "checkout.session.completed", whsec, nil, 200),
		stripeCase(t, "checkout.session.completed", "whsec_wrong", nil, 400),
		stripeCase(t, "checkout.session.completed", whsec, store500, 500),
		stripeCase(t, "charge.refunded", whsec, nil, 200),
		stripeCase(t, "charge.refunded", whsec, account.ErrPaymentNotFound, 200),
		stripeCase(t, "charge.refunded", whsec, store500, 500),
		openAPICase{op: "stripeWebhook", method: "POST", path: StripeWebhookPath, body: "{}", status: 404},
		openAPICase{op: "stripeWebhook", method: "GET", path: StripeWebhookPath, status: 405, stripe: true},
	)
}

const whsec = "whsec_openapi"

// stripeCase is a paid Checkout event signed with secret, to an enabled webhook.
func stripeCase(t *testing.T, kind, secret string, storeErr error, status int) openAPICase {
	payload := fmt.Sprintf(`{"id":"evt_1","object":"event","type":%q,"data":{"object":{"id":"cs_1","client_reference_id":"user_A","payment_status":"paid","currency":"usd","amount_subtotal":250,"amount_total":250,"payment_intent":"pi_1"}}}`, kind)
	if strings.HasPrefix(kind, "charge.") {
		payload = fmt.Sprintf(`{"id":"evt_2","object":"event","type":%q,"data":{"object":{"id":"ch_1","object":"charge","amount":250,"amount_refunded":125,"payment_intent":"pi_1"}}}`, kind)
	}
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(payload), Secret: secret, Timestamp: time.Now()})
	return openAPICase{op: "stripeWebhook", method: "POST", path: StripeWebhookPath, body: payload,
		header: []string{"Stripe-Signature", signed.Header}, storeErr: storeErr, status: status, stripe: true}
}
