package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/httpapi/respond"
)

// Bodies that clients match byte for byte.
var (
	bodyUnauthorized     = []byte(`{"error":"Unauthorized"}`)
	bodyForbidden        = []byte(`{"error":"Forbidden"}`)
	bodyInvalidCredits   = []byte(`{"error":"Invalid credits value"}`)
	bodyFetchError       = []byte(`{"error":"Error fetching credits"}`)
	bodyUpdateError      = []byte(`{"error":"Error updating credits"}`)
	bodyUnexpectedUpdate = []byte(`{"error":"Unexpected error updating credits"}`)
	bodyTooLarge         = []byte(`{"error":"Request body too large"}`)
	bodyMethodNotAllowed = []byte(`{"error":"Method not allowed"}`)
	bodyNotFound         = []byte(`{"error":"Not found"}`)
	bodyTooManyRequests  = []byte(`{"error":"Too many requests"}`)

	bodyMissingUserID         = []byte(`{"error":"Missing userId"}`)
	bodyInvalidUserID         = []byte(`{"error":"Invalid userId"}`)
	bodyMissingIdempotencyKey = []byte(`{"error":"Missing Idempotency-Key"}`)
	bodyInvalidIdempotencyKey = []byte(`{"error":"Invalid Idempotency-Key"}`)
	bodyIdempotencyKeyReused  = []byte(`{"error":"Idempotency-Key reused with a different request"}`)
	bodyInvalidTTL            = []byte(`{"error":"Invalid ttlSeconds"}`)
	bodyTooManyReservations   = []byte(`{"error":"Too many open reservations"}`)
	bodyReservationNotFound   = []byte(`{"error":"Reservation not found"}`)
	bodyReservationCaptured   = []byte(`{"error":"Reservation already captured"}`)
	bodyReservationReleased   = []byte(`{"error":"Reservation already released"}`)
	bodyReservationExpired    = []byte(`{"error":"Reservation expired"}`)
	bodyInvalidExpiresAt      = []byte(`{"error":"Invalid expiresAt"}`)
	bodyInvalidPriority       = []byte(`{"error":"Invalid priority"}`)
	bodyInvalidReason         = []byte(`{"error":"Invalid reason"}`)
	bodyTooManyGrants         = []byte(`{"error":"Too many open grants"}`)
	bodyGrantNotFound         = []byte(`{"error":"Grant not found"}`)
	bodyGrantClosed           = []byte(`{"error":"Grant has nothing left"}`)
)

// writeJSON answers status with body (respond.JSON, which the Stripe webhook writes with too).
func writeJSON(w http.ResponseWriter, status int, body []byte) { respond.JSON(w, status, body) }

// balanceBody is {"credits":N}.
func balanceBody(n int64) []byte {
	return append(strconv.AppendInt(append(make([]byte, 0, 32), `{"credits":`...), n, 10), '}')
}

// updatedBody is {"success":true,"credits":N}.
func updatedBody(n int64) []byte {
	return append(strconv.AppendInt(append(make([]byte, 0, 48), `{"success":true,"credits":`...), n, 10), '}')
}

// insufficientBody is {"error":"Insufficient credits","credits":N}.
func insufficientBody(n int64) []byte {
	return append(strconv.AppendInt(append(make([]byte, 0, 64), `{"error":"Insufficient credits","credits":`...), n, 10), '}')
}

// reservedBody is {"success":true,"reservationId":"<id>","credits":N}.
func reservedBody(id string, n int64) []byte {
	b := append(make([]byte, 0, 80), `{"success":true,"reservationId":"`...)
	b = append(b, id...) // validated: letters, digits, '_' and '-' only
	b = append(b, `","credits":`...)
	return append(strconv.AppendInt(b, n, 10), '}')
}

// transaction is one entry of GET /api/credits/transactions. Reference is there only for
// entries that have one (a purchase's Checkout Session, a lot), Unrecoverable only for a
// refund that found credits spent, so other entries read as before.
type transaction struct {
	Type          string `json:"type"`
	Credits       int64  `json:"credits"`
	Balance       int64  `json:"balance"`
	At            string `json:"at"`
	Reference     string `json:"reference,omitempty"`
	Unrecoverable int64  `json:"unrecoverable,omitempty"`
}

// transactionsBody is {"transactions":[...]}, newest first.
func transactionsBody(list []account.Transaction) []byte {
	out := struct {
		Transactions []transaction `json:"transactions"`
	}{Transactions: make([]transaction, len(list))}
	for i, t := range list {
		out.Transactions[i] = transaction{Type: string(t.Kind), Credits: t.Credits, Balance: t.Balance, At: t.At.UTC().Format(time.RFC3339), Reference: t.Reference,
			Unrecoverable: t.Unrecoverable}
	}
	data, _ := json.Marshal(out) // cannot fail: plain structs
	return data
}
