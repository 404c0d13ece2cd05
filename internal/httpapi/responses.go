package httpapi

import (
	"net/http"
	"strconv"
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
)

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

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
