package account

import (
	"fmt"
	"time"

	"github.com/gitread/usercredits-operator/internal/settings"
)

// Settings are the account rules that people set (flags, AddFlags).
type Settings struct {
	// GrantKeyRetention is how long a grant's Idempotency-Key is honoured: a retried grant
	// within it is never applied twice.
	GrantKeyRetention time.Duration
}

// AddFlags binds the account rules.
func (s *Settings) AddFlags(b *settings.Binder) {
	b.Section("Balances")
	b.Duration(&s.GrantKeyRetention, "grant-key-retention", 30*24*time.Hour,
		fmt.Sprintf("How long a grant's Idempotency-Key is honoured (at most the last %d grants per user): a retried grant within it is never applied twice. Keys of other operations: %v, the last %d.",
			GrantKeysMaxEntries, RequestKeysMaxAge, RequestKeysMaxEntries))
}

// DefaultSettings are the settings the flags default to.
func DefaultSettings() Settings {
	var s Settings
	s.AddFlags(settings.Defaults())
	return s
}

// Validate reports rules accounts cannot be kept by.
func (s Settings) Validate() error {
	if s.GrantKeyRetention <= 0 {
		return fmt.Errorf("--grant-key-retention must be positive, not %v", s.GrantKeyRetention)
	}
	return nil
}
