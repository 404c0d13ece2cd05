package credits

import (
	"errors"
	"net/http"
	"syscall"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// lostWriteError is a write that was sent but whose answer never came (lost): it may or may
// not have been applied.
type lostWriteError struct{ err error }

func (e *lostWriteError) Error() string { return "the write's answer was lost: " + e.err.Error() }
func (e *lostWriteError) Unwrap() error { return e.err }

// classifyWriteError marks errors after which the write may have been applied: anything
// but a refusal the apiserver answered (4xx other than 408) or a connection that was
// never made.
func classifyWriteError(err error) error {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return err
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		if code := status.Status().Code; code >= 400 && code < 500 && code != http.StatusRequestTimeout {
			return err
		}
	}
	return &lostWriteError{err: err}
}
