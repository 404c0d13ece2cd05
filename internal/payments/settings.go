package payments

import (
	"fmt"

	"github.com/gitread/usercredits-operator/internal/settings"
)

// Settings are the Stripe webhook's settings that people set (AddFlags).
type Settings struct {
	// WebhookSecret is the endpoint's signing secret (whsec_...); empty disables the webhook.
	WebhookSecret string
	// PricePerCreditCents converts a paid session's amount to credits when the session has
	// no metadata.credits.
	PricePerCreditCents int64
}

// AddFlags binds the webhook's settings.
func (s *Settings) AddFlags(b *settings.Binder) {
	b.Section("Stripe Checkout")
	b.SecretEnv(&s.WebhookSecret, "STRIPE_WEBHOOK_SECRET",
		"The webhook endpoint's signing secret (whsec_...): set, POST /api/webhooks/stripe grants paid Checkout Sessions; unset, it answers 404.")
	b.Int64(&s.PricePerCreditCents, "price-per-credit-cents", 125,
		"Price of one credit in the Checkout currency's smallest unit: a paid session without metadata.credits grants amount_total / this.")
}

// Enabled reports whether the webhook is served.
func (s Settings) Enabled() bool { return s.WebhookSecret != "" }

// Validate reports settings the webhook cannot run with.
func (s Settings) Validate() error {
	if s.PricePerCreditCents < 1 {
		return fmt.Errorf("--price-per-credit-cents must be at least 1, not %d", s.PricePerCreditCents)
	}
	return nil
}
