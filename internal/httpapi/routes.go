package httpapi

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/gitread/usercredits-operator/internal/account"
)

// route is one endpoint: the RBAC verb a service needs, the 500 body, the handler, and
// whether a Clerk user may call it.
type route struct {
	verb       string
	errorBody  []byte
	serve      func(h *Handler, ctx context.Context, w http.ResponseWriter, r *http.Request, user account.UserID)
	clerkAllow func(o *Options) bool
	// public routes skip admission (authentication, rate limit, authorization): the
	// endpoint authenticates the request itself, as the Stripe webhook checks Stripe's
	// signature. serve gets no user ID.
	public bool
	// servedIf, when set, says whether a handler with these options serves the route at
	// all; a handler that does not answers 404 at its path, whatever the method.
	servedIf func(o *Options) bool
}

func always(*Options) bool { return true }

// routes maps path → method → endpoint.
var routes = map[string]map[string]route{
	"/api/credits": {
		http.MethodGet:  {verb: "get", errorBody: bodyFetchError, serve: (*Handler).getCredits, clerkAllow: always},
		http.MethodPost: {verb: "update", errorBody: bodyUpdateError, serve: (*Handler).setCredits, clerkAllow: func(o *Options) bool { return o.AllowUserWrites }},
	},
	"/api/credits/consume": {
		http.MethodPost: {verb: "consume", errorBody: bodyUpdateError, serve: (*Handler).consume, clerkAllow: always},
	},
	"/api/credits/grant": {
		http.MethodPost: {verb: "grant", errorBody: bodyUpdateError, serve: (*Handler).grant, clerkAllow: func(*Options) bool { return false }},
	},
	"/api/credits/reserve": {
		http.MethodPost: {verb: "consume", errorBody: bodyUpdateError, serve: (*Handler).reserve, clerkAllow: always},
	},
	reservationsPrefix + "{id}/capture": {
		http.MethodPost: {verb: "consume", errorBody: bodyUpdateError, serve: (*Handler).capture, clerkAllow: always},
	},
	reservationsPrefix + "{id}/release": {
		http.MethodPost: {verb: "consume", errorBody: bodyUpdateError, serve: (*Handler).release, clerkAllow: always},
	},
	"/api/credits/transactions": {
		http.MethodGet: {verb: "get", errorBody: bodyFetchError, serve: (*Handler).transactions, clerkAllow: always},
	},
	"/api/credits/grants": {
		http.MethodGet: {verb: "get", errorBody: bodyFetchError, serve: (*Handler).grants, clerkAllow: always},
	},
	grantsPrefix + "{id}/void": {
		http.MethodPost: {verb: "grant", errorBody: bodyUpdateError, serve: (*Handler).voidGrant, clerkAllow: func(*Options) bool { return false }},
	},
	StripeWebhookPath: {
		http.MethodPost: {serve: (*Handler).stripeWebhook, public: true, servedIf: func(o *Options) bool { return o.StripeWebhook != nil }},
	},
}

// servedRoutes is the part of routes a handler with opts serves, computed once.
func servedRoutes(opts *Options) map[string]map[string]route {
	served := make(map[string]map[string]route, len(routes))
	for path, methods := range routes {
		for method, rt := range methods {
			if rt.servedIf != nil && !rt.servedIf(opts) {
				continue
			}
			if served[path] == nil {
				served[path] = map[string]route{}
			}
			served[path][method] = rt
		}
	}
	return served
}

// pattern is the routes key of path: the path itself, or a hold's route pattern.
func pattern(path string) string {
	if p, ok := idRoute(path, reservationsPrefix, "capture", "release"); ok {
		return p
	}
	if p, ok := idRoute(path, grantsPrefix, "void"); ok {
		return p
	}
	return path
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

// metricLabels bounds label cardinality: known routes and methods, else "other".
func metricLabels(r *http.Request) (string, string) {
	route, method := "other", "other"
	if p := pattern(r.URL.Path); routes[p] != nil {
		route = p
	}
	switch r.Method {
	case http.MethodGet, http.MethodPost, http.MethodOptions:
		method = r.Method
	}
	return route, method
}

// findRoute finds the endpoint for r among the handler's routes, or answers 404 or 405
// (with Allow) and returns false.
func (h *Handler) findRoute(w http.ResponseWriter, r *http.Request) (route, bool) {
	methods, known := h.routes[pattern(r.URL.Path)]
	if !known {
		writeJSON(w, http.StatusNotFound, bodyNotFound)
		return route{}, false
	}
	rt, allowed := methods[r.Method]
	if !allowed {
		w.Header().Set("Allow", allowHeader(methods))
		writeJSON(w, http.StatusMethodNotAllowed, bodyMethodNotAllowed)
		return route{}, false
	}
	return rt, true
}
