package httpapi

import (
	"errors"
	"fmt"
	"time"

	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/settings"
)

// Settings are the API's settings that people set (flags, AddFlags); the handler and the
// server read them from here, never from a copy.
type Settings struct {
	// BindAddress is where the API listens.
	BindAddress string
	// CertDir, when set, holds tls.crt and tls.key (the controller-runtime convention):
	// the API is served over HTTPS only, and renewed files (cert-manager) are picked up
	// without a restart.
	CertDir string
	// RequestTimeout bounds each request's authentication and storage work.
	RequestTimeout time.Duration
	// AllowUserWrites lets Clerk users set their own balance. Off by default: a user who
	// can set their own balance can mint credits for free.
	AllowUserWrites bool
	// CORSAllowedOrigins are the browser origins allowed to call the API.
	CORSAllowedOrigins []string
	// UserRateLimit and ServiceAccountRateLimit are the requests per second each Clerk user
	// and each ServiceAccount may send (burst: twice that); 0 is unlimited.
	UserRateLimit, ServiceAccountRateLimit float64
	// DefaultReservationTTL is how long a hold lasts when the request does not say.
	DefaultReservationTTL time.Duration
}

// AddFlags binds the API's settings.
func (s *Settings) AddFlags(b *settings.Binder) {
	b.Section("The credits API")
	b.String(&s.BindAddress, "api-bind-address", ":8080", "Address of the /api/credits HTTP API.")
	b.String(&s.CertDir, "api-cert-dir", "", "Directory with tls.crt and tls.key: serve the API over HTTPS only, reloading renewed files. Empty: plain HTTP.")
	b.Duration(&s.RequestTimeout, "api-request-timeout", 5*time.Second, "Upper bound on each API request's authentication and storage work (and the Stripe webhook's).")
	b.Bool(&s.AllowUserWrites, "allow-user-writes", false, "Let Clerk users POST /api/credits to set their own balance. Off: a user who sets their own balance mints free credits.")
	b.List(&s.CORSAllowedOrigins, "cors-allowed-origins", nil,
		"Comma-separated browser origins allowed to call the API, each as browsers send the Origin header: scheme://host[:port], lowercase, no default port, path or trailing slash (https://app.example.com). Others (*, https://app.example.com/) never match and are refused at start.")
	b.Float64(&s.UserRateLimit, "user-rate-limit", 20, "Requests per second each Clerk user may send (burst: twice that); 0 disables; else 1e-9 to 1e9.")
	b.Float64(&s.ServiceAccountRateLimit, "service-account-rate-limit", 0, "Requests per second each ServiceAccount may send (burst: twice that); 0 disables; else 1e-9 to 1e9.")
	b.Duration(&s.DefaultReservationTTL, "reservation-ttl", 15*time.Minute, "How long a hold lasts when POST /api/credits/reserve does not say (ttlSeconds); 1s to 24h.")
}

// The rate-limit flags' bounds, far beyond any limit a person means. Under minRateLimit
// (one request in 31 years) the time to refill one request, 1/limit seconds, no longer fits
// in a time.Duration: the bucket expires at a negative time, is full again at once, and no
// limit applies, silently. maxRateLimit is more than any replica serves, and far below
// where the burst, twice the limit as an int, overflows.
const (
	minRateLimit = 1e-9
	maxRateLimit = 1e9
)

// DefaultSettings are the settings the flags default to.
func DefaultSettings() Settings {
	var s Settings
	s.AddFlags(settings.Defaults())
	return s
}

// Validate reports settings the API cannot run with.
func (s Settings) Validate() error {
	var errs []error
	if s.BindAddress == "" {
		errs = append(errs, errors.New("--api-bind-address is empty"))
	}
	if s.RequestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--api-request-timeout must be positive, not %v", s.RequestTimeout))
	}
	for _, l := range []struct {
		flag  string
		limit float64
	}{{"--user-rate-limit", s.UserRateLimit}, {"--service-account-rate-limit", s.ServiceAccountRateLimit}} {
		// NaN passes every comparison; each of NaN, an infinity and a limit out of range
		// would silently apply no limit (see minRateLimit).
		if l.limit != 0 && !(l.limit >= minRateLimit && l.limit <= maxRateLimit) {
			errs = append(errs, fmt.Errorf("%s must be 0 (off) or between %g and %g requests per second, not %v", l.flag, minRateLimit, maxRateLimit, l.limit))
		}
	}
	if err := checkOrigins(s.CORSAllowedOrigins); err != nil {
		errs = append(errs, err)
	}
	if s.DefaultReservationTTL < time.Second || s.DefaultReservationTTL > account.MaxReservationTTL {
		errs = append(errs, fmt.Errorf("--reservation-ttl must be between 1s and %v, not %v", account.MaxReservationTTL, s.DefaultReservationTTL))
	}
	return errors.Join(errs...)
}
