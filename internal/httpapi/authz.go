package httpapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/metrics"
)

// admit decides who a request acts for: it authenticates the caller, applies the caller's
// rate limit, and authorizes the route. It returns the user ID acted on, or writes the
// refusal and returns false.
func (h *Handler) admit(ctx context.Context, w http.ResponseWriter, r *http.Request, rt route, principal *auth.Principal) (account.UserID, bool) {
	var err error
	if *principal, err = h.authenticate(ctx, r); err != nil {
		if errors.Is(err, auth.ErrUnauthenticated) {
			metrics.AuthFailures.WithLabelValues(authFailureReason(err)).Inc()
			writeJSON(w, http.StatusUnauthorized, bodyUnauthorized)
		} else {
			h.opts.Log.Error(err, "authentication unavailable")
			writeJSON(w, http.StatusInternalServerError, rt.errorBody)
		}
		return "", false
	}
	if ok, wait := h.limits[principal.Kind].allow(caller(*principal), h.now()); !ok {
		metrics.RateLimited.WithLabelValues(string(principal.Kind)).Inc()
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		writeJSON(w, http.StatusTooManyRequests, bodyTooManyRequests)
		return "", false
	}
	user, status, body := h.authorize(ctx, r, *principal, rt)
	if status == http.StatusForbidden {
		metrics.AuthFailures.WithLabelValues("forbidden").Inc()
	}
	if status != 0 {
		writeJSON(w, status, body)
		return "", false
	}
	return user, true
}

// errNoBearerToken is the authentication failure of a request without usable credentials.
var errNoBearerToken = fmt.Errorf("%w: no bearer token", auth.ErrUnauthenticated)

func (h *Handler) authenticate(ctx context.Context, r *http.Request) (auth.Principal, error) {
	token, ok := auth.BearerToken(r.Header.Get("Authorization"))
	if !ok || len(r.Header.Values("Authorization")) > 1 {
		// Two credentials name two callers (RFC 9110 allows one): neither is chosen.
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
// the user ID, parsed here once for the whole request, or the status and body to answer with.
func (h *Handler) authorize(ctx context.Context, r *http.Request, p auth.Principal, rt route) (account.UserID, int, []byte) {
	named, ok := namedUser(r.URL.RawQuery)
	if !ok {
		return "", http.StatusBadRequest, bodyInvalidUserID
	}
	switch p.Kind {
	case auth.KindClerkUser:
		user, err := account.ParseUserID(p.UserID)
		if err != nil {
			return "", http.StatusBadRequest, bodyInvalidUserID
		}
		if (named != "" && named != user) || !rt.clerkAllow(&h.opts) {
			return "", http.StatusForbidden, bodyForbidden
		}
		return user, 0, nil
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

// authFailureReason tells a missing credential from a rejected one.
func authFailureReason(err error) string {
	if errors.Is(err, errNoBearerToken) {
		return "no_bearer_token"
	}
	return "invalid_token"
}

// namedUser reads the userId query parameter: "" when absent or empty, and !ok when the
// query is malformed, names more than one user, or names an invalid user ID.
func namedUser(rawQuery string) (account.UserID, bool) {
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
	user, err := account.ParseUserID(named[0])
	return user, err == nil
}

func caller(p auth.Principal) string {
	if p.Kind == auth.KindServiceAccount {
		return p.Username
	}
	return p.UserID
}
