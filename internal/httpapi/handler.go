package httpapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/credits"
	"github.com/gitread/usercredits-operator/internal/metrics"
)

// MaxBodyBytes is the largest request body read; a {"credits":N} body needs a few dozen.
const MaxBodyBytes = 1 << 20

// Store is the balance storage the API serves (internal/credits.Store).
type Store interface {
	Balance(ctx context.Context, userID string) (int64, error)
	Apply(ctx context.Context, userID string, op credits.Operation) (credits.Result, error)
}

// Authorizer decides whether an in-cluster service may use a verb on UserCredits.
type Authorizer interface {
	Allowed(ctx context.Context, p auth.Principal, verb string) (bool, error)
}

// Options configures the handler.
type Options struct {
	Verifier auth.Verifier
	// Authorizer authorizes ServiceAccount callers; nil denies them everything.
	Authorizer Authorizer
	Store      Store
	// AllowUserWrites lets Clerk users set their own balance. Off by default: a user who
	// can set their own balance can mint credits for free.
	AllowUserWrites bool
	// RequestTimeout bounds each request's authentication and storage work.
	RequestTimeout time.Duration
	// CORSAllowedOrigins are the browser origins allowed to call the API.
	CORSAllowedOrigins []string
	// UserRateLimit and ServiceAccountRateLimit are the requests per second each Clerk user
	// and each ServiceAccount may send (burst: twice that); 0 is unlimited.
	UserRateLimit, ServiceAccountRateLimit float64
	Log                                    logr.Logger
}

// route is one endpoint: the RBAC verb a service needs, the 500 body, the handler, and
// whether a Clerk user may call it.
type route struct {
	verb       string
	errorBody  []byte
	serve      func(h *handler, ctx context.Context, w http.ResponseWriter, r *http.Request, userID string)
	clerkAllow func(o *Options) bool
}

func always(*Options) bool { return true }

// routes maps path → method → endpoint.
var routes = map[string]map[string]route{
	"/api/credits": {
		http.MethodGet:  {verb: "get", errorBody: bodyFetchError, serve: (*handler).getCredits, clerkAllow: always},
		http.MethodPost: {verb: "update", errorBody: bodyUpdateError, serve: (*handler).setCredits, clerkAllow: func(o *Options) bool { return o.AllowUserWrites }},
	},
	"/api/credits/consume": {
		http.MethodPost: {verb: "consume", errorBody: bodyUpdateError, serve: (*handler).consume, clerkAllow: always},
	},
	"/api/credits/grant": {
		http.MethodPost: {verb: "grant", errorBody: bodyUpdateError, serve: (*handler).grant, clerkAllow: func(*Options) bool { return false }},
	},
}

// allowHeader lists a path's methods for a 405's Allow header.
func allowHeader(methods map[string]route) string {
	allowed := make([]string, 0, len(methods))
	for m := range methods {
		allowed = append(allowed, m)
	}
	slices.Sort(allowed)
	return strings.Join(allowed, ", ")
}

type handler struct {
	opts Options
	// limits hold the token buckets of Clerk users and of ServiceAccounts.
	limits map[auth.Kind]*rateLimiter
	now    func() time.Time
}

// NewHandler returns the API's http.Handler.
func NewHandler(opts Options) http.Handler {
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 5 * time.Second
	}
	h := &handler{opts: opts, now: time.Now, limits: map[auth.Kind]*rateLimiter{
		auth.KindClerkUser:      newRateLimiter(opts.UserRateLimit, maxRateLimitedCallers),
		auth.KindServiceAccount: newRateLimiter(opts.ServiceAccountRateLimit, maxRateLimitedCallers),
	}}
	return http.HandlerFunc(h.serve)
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	var principal auth.Principal
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.opts.Log.Error(nil, "recovered panic", "method", r.Method, "path", r.URL.Path, "panic", p)
			if rec.status == 0 {
				body := bodyFetchError
				if r.Method == http.MethodPost {
					body = bodyUnexpectedUpdate
				}
				writeJSON(rec, http.StatusInternalServerError, body)
			}
		}
		routeLabel, methodLabel := metricLabels(r)
		metrics.APIRequests.WithLabelValues(routeLabel, methodLabel, strconv.Itoa(rec.status)).Inc()
		metrics.APIRequestDuration.WithLabelValues(routeLabel, methodLabel).Observe(time.Since(start).Seconds())
		// Access log: never the Authorization header or the body. Checked first because
		// building the arguments costs allocations on the hot path even when it is off.
		if log := h.opts.Log.V(1); log.Enabled() {
			log.Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
				"durationMs", float64(time.Since(start).Microseconds())/1000, "caller", caller(principal), "remote", r.RemoteAddr)
		}
	}()

	if h.cors(rec, r) {
		return
	}
	methods, known := routes[r.URL.Path]
	if !known {
		writeJSON(rec, http.StatusNotFound, bodyNotFound)
		return
	}
	rt, allowed := methods[r.Method]
	if !allowed {
		rec.Header().Set("Allow", allowHeader(methods))
		writeJSON(rec, http.StatusMethodNotAllowed, bodyMethodNotAllowed)
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), h.opts.RequestTimeout)
	defer cancel()
	var err error
	if principal, err = h.authenticate(ctx, r); err != nil {
		if errors.Is(err, auth.ErrUnauthenticated) {
			metrics.AuthFailures.WithLabelValues(authFailureReason(err)).Inc()
			writeJSON(rec, http.StatusUnauthorized, bodyUnauthorized)
		} else {
			h.opts.Log.Error(err, "authentication unavailable")
			writeJSON(rec, http.StatusInternalServerError, rt.errorBody)
		}
		return
	}
	if ok, wait := h.limits[principal.Kind].allow(caller(principal), h.now()); !ok {
		metrics.RateLimited.WithLabelValues(string(principal.Kind)).Inc()
		rec.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		writeJSON(rec, http.StatusTooManyRequests, bodyTooManyRequests)
		return
	}
	userID, status, body := h.authorize(ctx, r, principal, rt)
	if status == http.StatusForbidden {
		metrics.AuthFailures.WithLabelValues("forbidden").Inc()
	}
	if status != 0 {
		writeJSON(rec, status, body)
		return
	}
	rt.serve(h, ctx, rec, r, userID)
}

// errNoBearerToken is the authentication failure of a request without usable credentials.
var errNoBearerToken = fmt.Errorf("%w: no bearer token", auth.ErrUnauthenticated)

func (h *handler) authenticate(ctx context.Context, r *http.Request) (auth.Principal, error) {
	token, ok := auth.BearerToken(r.Header.Get("Authorization"))
	if !ok {
		return auth.Principal{}, errNoBearerToken
	}
	p, err := h.opts.Verifier.Verify(ctx, token)
	if errors.Is(err, auth.ErrUnauthenticated) {
		// The error describes the claim that failed, never the token itself.
		h.opts.Log.V(1).Info("authentication failed", "reason", err.Error(), "remote", r.RemoteAddr)
	}
	return p, err
}

// authorize picks the user a request acts on and checks the caller may act so. It returns
// the user ID, or the status and body to answer with.
func (h *handler) authorize(ctx context.Context, r *http.Request, p auth.Principal, rt route) (string, int, []byte) {
	named, ok := namedUser(r.URL.RawQuery)
	if !ok {
		return "", http.StatusBadRequest, bodyInvalidUserID
	}
	switch p.Kind {
	case auth.KindClerkUser:
		if !credits.ValidUserID(p.UserID) {
			return "", http.StatusBadRequest, bodyInvalidUserID
		}
		if (named != "" && named != p.UserID) || !rt.clerkAllow(&h.opts) {
			return "", http.StatusForbidden, bodyForbidden
		}
		return p.UserID, 0, nil
	case auth.KindServiceAccount:
		if named == "" {
			return "", http.StatusBadRequest, bodyMissingUserID
		}
		if h.opts.Authorizer == nil {
			return "", http.StatusForbidden, bodyForbidden
		}
		allowed, err := h.opts.Authorizer.Allowed(ctx, p, rt.verb)
		if err != nil {
			h.opts.Log.Error(err, "authorization unavailable", "caller", p.Username, "verb", rt.verb)
			return "", http.StatusInternalServerError, rt.errorBody
		}
		if !allowed {
			h.opts.Log.V(1).Info("forbidden", "caller", p.Username, "verb", rt.verb)
			return "", http.StatusForbidden, bodyForbidden
		}
		return named, 0, nil
	}
	return "", http.StatusForbidden, bodyForbidden
}

// metricLabels bounds label cardinality: known routes and methods, else "other".
func metricLabels(r *http.Request) (string, string) {
	route, method := "other", "other"
	if _, ok := routes[r.URL.Path]; ok {
		route = r.URL.Path
	}
	switch r.Method {
	case http.MethodGet, http.MethodPost, http.MethodOptions:
		method = r.Method
	}
	return route, method
}

// authFailureReason tells a missing credential from a rejected one.
func authFailureReason(err error) string {
	if errors.Is(err, errNoBearerToken) {
		return "no_bearer_token"
	}
	return "invalid_token"
}

// namedUser reads the userId query parameter: "" when absent or empty, and !ok when the
// query is malformed, names more than one user, or names an invalid user ID.
func namedUser(rawQuery string) (string, bool) {
	if rawQuery == "" {
		return "", true
	}
	query, err := url.ParseQuery(rawQuery)
	named := query["userId"]
	switch {
	case err != nil || len(named) > 1:
		return "", false
	case len(named) == 0 || named[0] == "":
		return "", true
	}
	return named[0], credits.ValidUserID(named[0])
}

func caller(p auth.Principal) string {
	if p.Kind == auth.KindServiceAccount {
		return p.Username
	}
	return p.UserID
}

// cors adds CORS headers for allowed origins and answers their preflight requests;
// it reports whether the request was fully handled.
func (h *handler) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || !slices.Contains(h.opts.CORSAllowedOrigins, origin) {
		return false
	}
	hdr := w.Header()
	hdr.Set("Access-Control-Allow-Origin", origin)
	hdr.Add("Vary", "Origin")
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	hdr.Set("Access-Control-Allow-Methods", "GET, POST")
	hdr.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key")
	hdr.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// statusRecorder remembers the status written, for the access log and panic recovery.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
