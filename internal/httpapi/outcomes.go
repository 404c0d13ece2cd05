package httpapi

import (
	"errors"
	"net/http"

	"github.com/gitread/usercredits-operator/internal/account"
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
	{account.ErrInsufficientCredits, http.StatusPaymentRequired, nil, "insufficient"},
	{account.ErrIdempotencyKeyReused, http.StatusConflict, bodyIdempotencyKeyReused, "key_reused"},
	{account.ErrInvalidUserID, http.StatusBadRequest, bodyInvalidUserID, "invalid"},
	{account.ErrBalanceOverflow, http.StatusBadRequest, bodyInvalidCredits, "invalid"},
	{account.ErrGrantExpired, http.StatusBadRequest, bodyInvalidExpiresAt, "invalid"}, // before ErrInvalidOperation, which it wraps
	{account.ErrInvalidOperation, http.StatusBadRequest, bodyInvalidCredits, "invalid"},
	{account.ErrUntrusted, http.StatusInternalServerError, bodyUpdateError, "untrusted_record"},
	{account.ErrTooManyReservations, http.StatusConflict, bodyTooManyReservations, "too_many_reservations"},
	{account.ErrReservationNotFound, http.StatusNotFound, bodyReservationNotFound, "reservation_not_found"},
	{account.ErrReservationCaptured, http.StatusConflict, bodyReservationCaptured, "reservation_captured"},
	{account.ErrReservationReleased, http.StatusConflict, bodyReservationReleased, "reservation_released"},
	{account.ErrReservationExpired, http.StatusGone, bodyReservationExpired, "reservation_expired"},
	{account.ErrTooManyLots, http.StatusConflict, bodyTooManyGrants, "too_many_grants"},
	{account.ErrLotNotFound, http.StatusNotFound, bodyGrantNotFound, "grant_not_found"},
	{account.ErrLotClosed, http.StatusConflict, bodyGrantClosed, "grant_closed"},
}

var (
	applied     = outcome{status: http.StatusOK, label: "applied"}
	replayed    = outcome{status: http.StatusOK, label: "replayed"}
	storeFailed = outcome{status: http.StatusInternalServerError, body: bodyUpdateError, label: "error"}
)

// outcomeOf looks up what an operation's result and error come to.
func outcomeOf(res account.Result, err error) outcome {
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
