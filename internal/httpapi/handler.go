// Package httpapi serves the credits HTTP contract (docs/api.md; GET and POST /api/credits
// are the web app's existing contract): routes, status codes and byte-exact JSON bodies,
// CORS, per-caller rate limits and the TLS server. Authentication and storage are injected.
package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/go-logr/logr"

	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/auth"
)

// StripeWebhookPath is where Stripe delivers Checkout events.
const StripeWebhookPath = "/api/webhooks/stripe"

// MaxBodyBytes is the largest request body read; a {"credits":N} body needs a few dozen.
const MaxBodyBytes = 1 << 20

// Store is the balance storage the API serves (internal/credits.Store).
type Store interface {
	Balance(ctx context.Context, user account.UserID) (int64, error)
	Apply(ctx context.Context, user account.UserID, op account.Operation) (account.Result, error)
	Transactions(ctx context.Context, user account.UserID) ([]account.Transaction, error)
	Grants(ctx context.Context, user account.UserID) ([]account.GrantView, error)
}

// Authorizer decides whether an in-cluster service may use a verb on UserCredits.
type Authorizer interface {
	Allowed(ctx context.Context, p auth.Principal, verb string) (bool, error)
}

// Options configures the handler: the settings people set, and the parts it is built from.
type Options struct {
	Settings
	Verifier auth.Verifier
	// Authorizer authorizes ServiceAccount callers; nil denies them everything.
	Authorizer Authorizer
	Store      Store
	// StripeWebhook serves POST StripeWebhookPath, without Clerk or ServiceAccount
	// authentication (it checks Stripe's signature itself); other methods get the route
	// table's 405. nil answers 404 there.
	StripeWebhook http.Handler
	Log           logr.Logger
}

// Handler serves the API.
type Handler struct {
	opts Options
	// routes are the endpoints these options serve (servedRoutes).
	routes map[string]map[string]route
	// limits hold the token buckets of Clerk users and of ServiceAccounts.
	limits map[auth.Kind]*rateLimiter
	now    func() time.Time
}

// NewHandler returns the API's handler, or why its settings cannot serve.
func NewHandler(opts Options) (*Handler, error) {
	if err := opts.Settings.Validate(); err != nil {
		return nil, err
	}
	return &Handler{opts: opts, now: time.Now, routes: servedRoutes(&opts), limits: map[auth.Kind]*rateLimiter{
		auth.KindClerkUser:      newRateLimiter(opts.UserRateLimit, maxRateLimitedCallers),
		auth.KindServiceAccount: newRateLimiter(opts.ServiceAccountRateLimit, maxRateLimitedCallers),
	}}, nil
}

// Settings are the settings the handler serves with.
func (h *Handler) Settings() Settings { return h.opts.Settings }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.serve(w, r) }

// serve is the request pipeline: CORS, routing, admission (authentication, rate limit,
// authorization; not for public routes), then the endpoint; observe wraps it all.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w}
	var principal auth.Principal
	defer h.observe(rec, r, time.Now(), &principal)

	if h.cors(rec, r) {
		return
	}
	ctx, cancel := withLazyDeadline(r.Context(), h.opts.RequestTimeout)
	defer cancel()
	rt, ok := h.findRoute(rec, r)
	if !ok {
		return
	}
	if rt.public {
		rt.serve(h, ctx, rec, r, "")
		return
	}
	user, ok := h.admit(ctx, rec, r, rt, &principal)
	if !ok {
		return
	}
	rt.serve(h, ctx, rec, r, user)
}

// stripeWebhook hands a delivery to the webhook, with the request timeout bounding its grant.
func (h *Handler) stripeWebhook(ctx context.Context, w http.ResponseWriter, r *http.Request, _ account.UserID) {
	h.opts.StripeWebhook.ServeHTTP(w, r.WithContext(ctx))
}
