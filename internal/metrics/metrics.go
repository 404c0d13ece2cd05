// Package metrics defines the operator's own Prometheus metrics, registered with
// controller-runtime's registry so they are served on the manager's metrics endpoint.
package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	// APIRequests counts API requests by route, method and status code.
	APIRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "usercredits_api_requests_total",
		Help: "Credits API requests by route, method and HTTP status code.",
	}, []string{"route", "method", "code"})

	// APIRequestDuration observes API request latency by route and method.
	APIRequestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "usercredits_api_request_duration_seconds",
		Help:    "Credits API request latency by route and method.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route", "method"})

	// AuthFailures counts rejected requests by reason.
	AuthFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "usercredits_auth_failures_total",
		Help: "Requests refused by authentication or authorization, by reason.",
	}, []string{"reason"})

	// RateLimited counts requests refused with 429 by the per-caller rate limit.
	RateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "usercredits_api_rate_limited_total",
		Help: "Requests refused with 429 by the per-caller rate limit, by caller kind (ClerkUser, ServiceAccount).",
	}, []string{"kind"})

	// StripeEvents counts Stripe webhook deliveries by event type and what came of them.
	StripeEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "usercredits_stripe_events_total",
		Help: "Stripe webhook deliveries by event type (other for types the webhook does not handle, unknown before the signature is verified) and result (docs/metrics.md).",
	}, []string{"type", "result"})

	// CreditOperations counts balance operations by kind and result.
	CreditOperations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "usercredits_operations_total",
		Help: "Balance operations through the API (set, consume, grant) by result: applied, replayed, insufficient, key_reused, invalid, untrusted_record, error.",
	}, []string{"kind", "result"})

	// ConflictRetries counts writes retried after losing an optimistic-concurrency race.
	ConflictRetries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "usercredits_conflict_retries_total",
		Help: "Balance writes retried because the object changed since their decision.",
	})

	// ValidationFailures counts objects the controller found invalid, by reason.
	ValidationFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "usercredits_validation_failures_total",
		Help: "UserCredits objects marked Valid=False, by reason (NegativeBalance, DuplicateUserID).",
	}, []string{"reason"})
)

// CreditsExpired counts the credits removed from lots whose time was up.
var CreditsExpired = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "usercredits_credits_expired_total",
	Help: "Credits removed from lots whose expiresAt had passed (what was left of them, and what holds returned to them later).",
})

// RefundUnrecovered counts the credits Stripe refunds should have taken back that had been
// spent already.
var RefundUnrecovered = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "usercredits_refund_unrecovered_credits_total",
	Help: "Credits that Stripe refunds should have taken back but that had been spent already (or were spent by a hold open at the refund).",
})

// lowBalanceUsers counts the users whose LowBalance condition is True; set by SetLowBalanceUsers.
var lowBalanceUsers atomic.Pointer[func() float64]

// LowBalanceUsers reports the users whose LowBalance condition is True, counted from the
// informer cache at each scrape; every replica reports the same number.
var LowBalanceUsers = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
	Name: "usercredits_low_balance_users",
	Help: "Users whose available credits are at or below their low-balance threshold (LowBalance=True).",
}, func() float64 {
	if f := lowBalanceUsers.Load(); f != nil {
		return (*f)()
	}
	return 0
})

// SetLowBalanceUsers sets how usercredits_low_balance_users is counted.
func SetLowBalanceUsers(count func() float64) { lowBalanceUsers.Store(&count) }

func init() {
	crmetrics.Registry.MustRegister(CreditsExpired, RefundUnrecovered, LowBalanceUsers, APIRequests, APIRequestDuration, AuthFailures, RateLimited, StripeEvents, CreditOperations, ConflictRetries, ValidationFailures)
}
