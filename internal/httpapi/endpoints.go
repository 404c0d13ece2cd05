package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/metrics"
)

// maxIdempotencyKeyLength bounds the Idempotency-Key header (a checkout session ID is ~70).
const maxIdempotencyKeyLength = 255

func (h *Handler) getCredits(ctx context.Context, w http.ResponseWriter, _ *http.Request, user account.UserID) {
	n, err := h.opts.Store.Balance(ctx, user)
	if err != nil {
		h.opts.Log.Error(err, "reading balance", "userID", user)
		writeJSON(w, http.StatusInternalServerError, bodyFetchError)
		return
	}
	writeJSON(w, http.StatusOK, balanceBody(n))
}

// setCredits is POST /api/credits: set the balance (upsert).
func (h *Handler) setCredits(ctx context.Context, w http.ResponseWriter, r *http.Request, user account.UserID) {
	h.amountOperation(ctx, w, r, user, account.OpSet, false)
}

// consume is POST /api/credits/consume: subtract n ≥ 1 (1 for an empty body) atomically.
func (h *Handler) consume(ctx context.Context, w http.ResponseWriter, r *http.Request, user account.UserID) {
	h.amountOperation(ctx, w, r, user, account.OpConsume, false)
}

// amountOperation is set, consume or grant: {"credits":n} (consume: 1 when empty).
func (h *Handler) amountOperation(ctx context.Context, w http.ResponseWriter, r *http.Request, user account.UserID, kind account.OpKind, needKey bool) {
	op, body, ok := readRequest(w, r, kind, needKey)
	if !ok {
		return
	}
	op.Amount = 1
	if kind != account.OpConsume || len(body) > 0 {
		var err error
		if op.Amount, err = ParseCredits(body); err != nil || (kind != account.OpSet && op.Amount < 1) {
			writeJSON(w, http.StatusBadRequest, bodyInvalidCredits)
			return
		}
	}
	h.perform(ctx, w, user, op)
}

// readRequest reads the Idempotency-Key (required with needKey) and the body, trimmed, or
// answers 400 or 413 and returns false.
func readRequest(w http.ResponseWriter, r *http.Request, kind account.OpKind, needKey bool) (account.Operation, []byte, bool) {
	key := r.Header.Get("Idempotency-Key")
	switch {
	case len(r.Header.Values("Idempotency-Key")) > 1:
		// Which one counts is not the caller's to guess: a retry that sent the same two in
		// the other order would otherwise be applied under another key.
		writeJSON(w, http.StatusBadRequest, bodyInvalidIdempotencyKey)
		return account.Operation{}, nil, false
	case key == "" && needKey:
		writeJSON(w, http.StatusBadRequest, bodyMissingIdempotencyKey)
		return account.Operation{}, nil, false
	case !validIdempotencyKey(key):
		writeJSON(w, http.StatusBadRequest, bodyInvalidIdempotencyKey)
		return account.Operation{}, nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			writeJSON(w, http.StatusRequestEntityTooLarge, bodyTooLarge)
			return account.Operation{}, nil, false
		}
		writeJSON(w, http.StatusBadRequest, bodyInvalidCredits)
		return account.Operation{}, nil, false
	}
	return account.Operation{Kind: kind, IdempotencyKey: key}, bytes.TrimSpace(body), true
}

// perform applies op and answers with its outcome. A capture or release of a malformed
// hold ID (a void of a malformed lot ID) is not sent to the store: no hold (lot) has that
// ID, so it is refused as any unknown one is, without a read.
func (h *Handler) perform(ctx context.Context, w http.ResponseWriter, user account.UserID, op account.Operation) {
	var res account.Result
	var err error
	switch {
	case (op.Kind == account.OpCapture || op.Kind == account.OpRelease) && !account.ValidHoldID(op.ReservationID):
		err = account.ErrReservationNotFound
	case op.Kind == account.OpVoid && !account.ValidLotID(op.Terms.ID):
		err = account.ErrLotNotFound
	default:
		res, err = h.opts.Store.Apply(ctx, user, op)
	}
	o := outcomeOf(res, err)
	metrics.CreditOperations.WithLabelValues(string(op.Kind), o.label).Inc()
	switch {
	case o.status == http.StatusOK:
		if res.Replayed {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		if op.Kind == account.OpReserve {
			writeJSON(w, http.StatusOK, reservedBody(res.ReservationID, res.Credits))
			return
		}
		writeJSON(w, http.StatusOK, updatedBody(res.Credits))
	case o.status == http.StatusPaymentRequired:
		writeJSON(w, o.status, insufficientBody(res.Credits))
	default:
		if o.status == http.StatusInternalServerError {
			h.opts.Log.Error(err, "changing balance", "userID", user, "op", op.Kind)
		}
		writeJSON(w, o.status, o.body)
	}
}

// transactions is GET /api/credits/transactions: the user's history, newest first.
func (h *Handler) transactions(ctx context.Context, w http.ResponseWriter, _ *http.Request, user account.UserID) {
	list, err := h.opts.Store.Transactions(ctx, user)
	if err != nil {
		h.opts.Log.Error(err, "reading transactions", "userID", user)
		writeJSON(w, http.StatusInternalServerError, bodyFetchError)
		return
	}
	writeJSON(w, http.StatusOK, transactionsBody(list))
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
