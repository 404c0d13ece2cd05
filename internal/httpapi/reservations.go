package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/gitread/usercredits-operator/internal/account"
)

// reservationsPrefix starts the paths of one hold: /api/credits/reservations/<id>/capture
// and /api/credits/reservations/<id>/release.
const reservationsPrefix = "/api/credits/reservations/"

// maxReservationTTLSeconds bounds ttlSeconds (a day).
const maxReservationTTLSeconds = int64(account.MaxReservationTTL / time.Second)

// reserve is POST /api/credits/reserve: hold {"credits":n} (1 when absent) for
// {"ttlSeconds":s} (the operator's default when absent).
func (h *Handler) reserve(ctx context.Context, w http.ResponseWriter, r *http.Request, user account.UserID) {
	op, body, ok := readRequest(w, r, account.OpReserve, false)
	if !ok {
		return
	}
	op.Amount, op.TTL = 1, h.opts.DefaultReservationTTL
	if len(body) > 0 {
		fields, err := parseOnlyFields(body, fieldCredits, fieldTTLSeconds)
		if fe, isField := err.(fieldError); isField && fe.field == fieldTTLSeconds {
			writeJSON(w, http.StatusBadRequest, bodyInvalidTTL)
			return
		}
		if err != nil || (hasField(fields, fieldCredits) && fields[fieldCredits] < 1) {
			writeJSON(w, http.StatusBadRequest, bodyInvalidCredits)
			return
		}
		if hasField(fields, fieldCredits) {
			op.Amount = fields[fieldCredits]
		}
		if hasField(fields, fieldTTLSeconds) {
			ttl := fields[fieldTTLSeconds]
			if ttl < 1 || ttl > maxReservationTTLSeconds {
				writeJSON(w, http.StatusBadRequest, bodyInvalidTTL)
				return
			}
			op.TTL = time.Duration(ttl) * time.Second
		}
	}
	h.perform(ctx, w, user, op)
}

// capture is POST /api/credits/reservations/<id>/capture: spend {"credits":m} of the hold
// (all of it when absent) and return the rest.
func (h *Handler) capture(ctx context.Context, w http.ResponseWriter, r *http.Request, user account.UserID) {
	op, body, ok := readRequest(w, r, account.OpCapture, false)
	if !ok {
		return
	}
	op.ReservationID, op.CaptureAll = idOf(r.URL.Path, reservationsPrefix), len(body) == 0
	if len(body) > 0 {
		fields, err := parseOnlyFields(body, fieldCredits)
		if op.Amount = fields[fieldCredits]; err != nil {
			writeJSON(w, http.StatusBadRequest, bodyInvalidCredits)
			return
		}
		op.CaptureAll = !hasField(fields, fieldCredits)
	}
	h.perform(ctx, w, user, op)
}

// release is POST /api/credits/reservations/<id>/release: return the whole hold. It reads
// no member, so only an empty body or {} is accepted: anything else is refused as capture
// refuses it, rather than released on a request that may have meant something else.
func (h *Handler) release(ctx context.Context, w http.ResponseWriter, r *http.Request, user account.UserID) {
	op, body, ok := readRequest(w, r, account.OpRelease, false)
	if !ok {
		return
	}
	if len(body) > 0 {
		if _, err := parseOnlyFields(body); err != nil {
			writeJSON(w, http.StatusBadRequest, bodyInvalidCredits)
			return
		}
	}
	op.ReservationID = idOf(r.URL.Path, reservationsPrefix)
	h.perform(ctx, w, user, op)
}
