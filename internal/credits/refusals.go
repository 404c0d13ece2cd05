package credits

import (
	"errors"
	"time"
)

// refusal reports whether err refuses an operation on what the cache showed, in a way a
// newer state could change: not enough credits, or a hold the cache does not show yet.
func refusal(err error) bool {
	return errors.Is(err, ErrInsufficientCredits) || errors.Is(err, ErrReservationNotFound)
}

// refusalConfirmInterval is how often, at most, a refusal for insufficient credits that the
// cache decided is confirmed against the apiserver for one user.
const refusalConfirmInterval = time.Second

// confirmRefusal says whether a refusal the cache decided must be confirmed by a read from
// the apiserver: always while this replica has a write for the user that its cache has not
// shown, else at most once per refusalConfirmInterval. A refusal changes nothing, and the
// precondition still guards every write; the confirmation catches a grant made through
// another replica or kubectl that the cache has not shown yet, without letting a user who
// keeps consuming at zero drive one apiserver read per request.
func (s *Store) confirmRefusal(userID string) bool {
	if s.written.pending(userID) {
		return true
	}
	now := time.Now()
	if _, recent := s.refusals.Get(userID, now); recent {
		return false
	}
	s.refusals.Put(userID, struct{}{}, now.Add(refusalConfirmInterval), now)
	return true
}
