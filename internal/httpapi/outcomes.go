package httpapi

import (
	"errors"
	"net/http"

	"github.com/gitread/usercredits-operator/internal/credits"
)

// outcome is what a balance operation came to: the HTTP answer, and the result label of
// usercredits_operations_total.
type outcome struct {
	err    error
	status int
	body   []byte // nil: built from the result (200, 402)
	label  string
}

// outcomes is the one table from the store's errors to answers and metric labels; an
// error not listed is a storage failure.
var outcomes = []outcome{
	{credits.ErrInsufficientCredits, http.StatusPaymentRequired, nil, "insufficient"},
	{credits.ErrIdempotencyKeyReused, http.StatusConflict, bodyIdempotencyKeyReused, "key_reused"},
	{credits.ErrInvalidUserID, http.StatusBadRequest, bodyInvalidUserID, "invalid"},
	{credits.ErrBalanceOverflow, http.StatusBadRequest, bodyInvalidCredits, "invalid"},
	{credits.ErrInvalidOperation, http.StatusBadRequest, bodyInvalidCredits, "invalid"},
	{credits.ErrUntrustedRecord, http.StatusInternalServerError, bodyUpdateError, "untrusted_record"},
	{credits.ErrTooManyReservations, http.StatusConflict, bodyTooManyReservations, "too_many_reservations"},
	{credits.ErrReservationNotFound, http.StatusNotFound, bodyReservationNotFound, "reservation_not_found"},
	{credits.ErrReservationCaptured, http.StatusConflict, bodyReservationCaptured, "reservation_captured"},
	{credits.ErrReservationReleased, http.StatusConflict, bodyReservationReleased, "reservation_released"},
	{credits.ErrReservationExpired, http.StatusGone, bodyReservationExpired, "reservation_expired"},
}

var (
	applied     = outcome{status: http.StatusOK, label: "applied"}
	replayed    = outcome{status: http.StatusOK, label: "replayed"}
	storeFailed = outcome{status: http.StatusInternalServerError, body: bodyUpdateError, label: "error"}
)

// outcomeOf looks up what an operation's result and error come to.
func outcomeOf(res credits.Result, err error) outcome {
	switch {
	case err == nil && res.Replayed:
		return replayed
	case err == nil:
		return applied
	}
	for _, o := range outcomes {
		if errors.Is(err, o.err) {
			return o
		}
	}
	return storeFailed
}
