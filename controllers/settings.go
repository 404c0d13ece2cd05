package controllers

import (
	"errors"
	"fmt"

	"github.com/gitread/usercredits-operator/internal/settings"
)

// Settings are the controller's settings that people set (flags, AddFlags).
type Settings struct {
	// LowBalanceThreshold: at or below it, a user's LowBalance condition is True; 0 leaves
	// it to each object's spec.lowBalanceThreshold.
	LowBalanceThreshold int64
	// Workers is how many UserCredits objects are judged at once (each waits out its status
	// write's round trip to the apiserver).
	Workers int64
}

// AddFlags binds the controller's settings.
func (s *Settings) AddFlags(b *settings.Binder) {
	b.Section("The controller")
	b.Int64(&s.LowBalanceThreshold, "low-balance-threshold", 0,
		"At or below this many available credits a user's LowBalance condition is True (Warning Event LowBalance, usercredits_low_balance_users); 0: only objects that set spec.lowBalanceThreshold.")
	b.Int64(&s.Workers, "controller-workers", DefaultWorkers,
		"UserCredits objects the controller judges at once (controller_runtime_max_concurrent_reconciles); each waits out its status write's round trip, so more write faster until the apiserver's CPU is the limit, and every one in flight is a write the API's own writes share the apiserver with.")
}

// DefaultWorkers is --controller-workers' default (docs/benchmarks.md, "Start on objects
// without status").
const DefaultWorkers = 8

// Validate reports settings the controller cannot run with.
func (s Settings) Validate() error {
	var errs []error
	if s.LowBalanceThreshold < 0 {
		errs = append(errs, fmt.Errorf("--low-balance-threshold must be 0 (off) or positive, not %d", s.LowBalanceThreshold))
	}
	if s.Workers < 1 || s.Workers > maxWorkers {
		errs = append(errs, fmt.Errorf("--controller-workers must be between 1 and %d, not %d", maxWorkers, s.Workers))
	}
	return errors.Join(errs...)
}

// maxWorkers bounds --controller-workers: beyond it, workers only queue at the apiserver.
const maxWorkers = 256
