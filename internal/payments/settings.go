package payments

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/gitread/usercredits-operator/internal/settings"
)

// Settings are the Stripe webhook's settings that people set (AddFlags).
type Settings struct {
	// WebhookSecret is the endpoint's signing secret (whsec_...); empty disables the webhook.
	WebhookSecret string
	// PricePerCreditCents converts a paid session's amount to credits when the session has
	// no metadata.credits.
	PricePerCreditCents int64
	// CheckoutCurrency is the currency PricePerCreditCents is in (ISO 4217, lower case): a
	// session in another without metadata.credits cannot be priced, and is unassignable.
	CheckoutCurrency string
}

// AddFlags binds the webhook's settings.
func (s *Settings) AddFlags(b *settings.Binder) {
	b.Section("Stripe Checkout")
	b.SecretEnv(&s.WebhookSecret, "STRIPE_WEBHOOK_SECRET",
		"The webhook endpoint's signing secret (whsec_...): set, POST /api/webhooks/stripe grants paid Checkout Sessions and takes refunded and disputed ones back; unset, it answers 404.")
	b.Int64(&s.PricePerCreditCents, "price-per-credit-cents", 125,
		"Price of one credit in the smallest unit of --checkout-currency: a paid session without metadata.credits grants amount_subtotal (before tax and discounts) / this.")
	b.String(&s.CheckoutCurrency, "checkout-currency", "usd",
		"The currency --price-per-credit-cents is in (ISO 4217 code): a session in another currency without metadata.credits is not credited (unassignable). With Adaptive Pricing, the session's source currency counts.")
}

// Enabled reports whether the webhook is served.
func (s Settings) Enabled() bool { return s.WebhookSecret != "" }

var currencyCode = regexp.MustCompile(`^[a-z]{3}$`)

// Validate reports settings the webhook cannot run with.
func (s Settings) Validate() error {
	if s.PricePerCreditCents < 1 {
		return fmt.Errorf("--price-per-credit-cents must be at least 1, not %d", s.PricePerCreditCents)
	}
	if !currencyCode.MatchString(strings.ToLower(s.CheckoutCurrency)) {
		return fmt.Errorf("--checkout-currency must be a three-letter ISO 4217 code such as usd, not %q", s.CheckoutCurrency)
	}
	return nil
}
