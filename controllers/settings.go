package controllers

import (
	"fmt"

	"github.com/gitread/usercredits-operator/internal/settings"
)

// Settings are the controller's settings that people set (flags, AddFlags).
type Settings struct {
	// LowBalanceThreshold: at or below it, a user's LowBalance condition is True; 0 leaves
	// it to each object's spec.lowBalanceThreshold.
	LowBalanceThreshold int64
}

// AddFlags binds the controller's settings.
func (s *Settings) AddFlags(b *settings.Binder) {
	b.Section("The controller")
	b.Int64(&s.LowBalanceThreshold, "low-balance-threshold", 0,
		"At or below this many available credits a user's LowBalance condition is True (Warning Event LowBalance, usercredits_low_balance_users); 0: only objects that set spec.lowBalanceThreshold.")
}

// Validate reports settings the controller cannot run with.
func (s Settings) Validate() error {
	if s.LowBalanceThreshold < 0 {
		return fmt.Errorf("--low-balance-threshold must be 0 (off) or positive, not %d", s.LowBalanceThreshold)
	}
	return nil
}
