package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/gitread/usercredits-operator/internal/credits"
	"github.com/gitread/usercredits-operator/internal/metrics"
)

// maxIdempotencyKeyLength bounds the Idempotency-Key header (a checkout session ID is ~70).
const maxIdempotencyKeyLength = 255

func (h *handler) getCredits(ctx context.Context, w http.ResponseWriter, _ *http.Request, userID string) {
	n, err := h.opts.Store.Balance(ctx, userID)
	if errors.Is(err, credits.ErrInvalidUserID) {
		writeJSON(w, http.StatusBadRequest, bodyInvalidUserID)
		return
	}
	if err != nil {
		h.opts.Log.Error(err, "reading balance", "userID", userID)
		writeJSON(w, http.StatusInternalServerError, bodyFetchError)
		return
	}
	writeJSON(w, http.StatusOK, balanceBody(n))
}

// setCredits is POST /api/credits: set the balance (upsert).
func (h *handler) setCredits(ctx context.Context, w http.ResponseWriter, r *http.Request, userID string) {
	h.apply(ctx, w, r, userID, credits.OpSet, 0, false)
}

// consume is POST /api/credits/consume: subtract n ≥ 1 (1 for an empty body) atomically.
func (h *handler) consume(ctx context.Context, w http.ResponseWriter, r *http.Request, userID string) {
	h.apply(ctx, w, r, userID, credits.OpConsume, 1, false)
}

// grant is POST /api/credits/grant: add n ≥ 1 atomically, exactly once per Idempotency-Key.
func (h *handler) grant(ctx context.Context, w http.ResponseWriter, r *http.Request, userID string) {
	h.apply(ctx, w, r, userID, credits.OpGrant, 0, true)
}

// apply reads the amount and Idempotency-Key, performs the operation and answers. A zero
// emptyDefault means the body is required; needKey makes the Idempotency-Key header required.
func (h *handler) apply(ctx context.Context, w http.ResponseWriter, r *http.Request, userID string, kind credits.OpKind, emptyDefault int64, needKey bool) {
	key := r.Header.Get("Idempotency-Key")
	switch {
	case key == "" && needKey:
		writeJSON(w, http.StatusBadRequest, bodyMissingIdempotencyKey)
		return
	case !validIdempotencyKey(key):
		writeJSON(w, http.StatusBadRequest, bodyInvalidIdempotencyKey)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			writeJSON(w, http.StatusRequestEntityTooLarge, bodyTooLarge)
			return
		}
		writeJSON(w, http.StatusBadRequest, bodyInvalidCredits)
		return
	}
	amount := emptyDefault
	if emptyDefault == 0 || len(bytes.TrimSpace(body)) > 0 {
		if amount, err = ParseCredits(body); err != nil || (kind != credits.OpSet && amount < 1) {
			writeJSON(w, http.StatusBadRequest, bodyInvalidCredits)
			return
		}
	}

	res, err := h.opts.Store.Apply(ctx, userID, credits.Operation{Kind: kind, Amount: amount, IdempotencyKey: key})
	o := outcomeOf(res, err)
	metrics.CreditOperations.WithLabelValues(string(kind), o.label).Inc()
	switch {
	case o.status == http.StatusOK:
		if res.Replayed {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		writeJSON(w, http.StatusOK, updatedBody(res.Credits))
	case o.status == http.StatusPaymentRequired:
		writeJSON(w, o.status, insufficientBody(res.Credits))
	default:
		if o.status == http.StatusInternalServerError {
			h.opts.Log.Error(err, "changing balance", "userID", userID, "op", kind)
		}
		writeJSON(w, o.status, o.body)
	}
}

// validIdempotencyKey accepts an absent key, or 1–255 visible ASCII characters.
func validIdempotencyKey(key string) bool {
	if len(key) > maxIdempotencyKeyLength {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return false
		}
	}
	return true
}
