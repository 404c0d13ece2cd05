package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/gitread/usercredits-operator/internal/account"
)

// grantsPrefix starts the path of one lot's void: /api/credits/grants/<id>/void.
const grantsPrefix = "/api/credits/grants/"

// Members of a grant's body beside "credits".
const (
	fieldExpiresAt = "expiresAt"
	fieldPriority  = "priority"
	fieldReason    = "reason"
)

// grant is POST /api/credits/grant: add {"credits":n} (n ≥ 1) as a lot of its own, with
// optional "expiresAt" (RFC 3339, in the future), "priority" (0–100, default 50; lower is
// spent first) and "reason" (≤ 256 characters); exactly once per Idempotency-Key.
func (h *Handler) grant(ctx context.Context, w http.ResponseWriter, r *http.Request, user account.UserID) {
	op, body, ok := readRequest(w, r, account.OpGrant, true)
	if !ok {
		return
	}
	var bad []byte
	if op.Amount, op.Terms, bad = parseGrant(body); bad != nil {
		writeJSON(w, http.StatusBadRequest, bad)
		return
	}
	h.perform(ctx, w, user, op)
}

// parseGrant reads a grant's body; it returns the body of a 400 when it cannot be granted.
// A member other than those above is refused, not ignored: a misspelt "expiresat" must not
// become a grant that never expires. An expiresAt that is not in the future is the store's
// to refuse (account.ErrGrantExpired), after it has looked the Idempotency-Key up: a
// retry of a grant applied before its lot expired is a replay, not a 400 saying that
// nothing was stored.
func parseGrant(body []byte) (int64, account.LotTerms, []byte) {
	found, err := members(body, true, fieldCredits, fieldExpiresAt, fieldPriority, fieldReason)
	var terms account.LotTerms
	if fe, isField := err.(fieldError); isField && fe.field != fieldCredits {
		return 0, terms, invalidMember(fe.field)
	}
	if err != nil || found[fieldCredits] == nil {
		return 0, terms, bodyInvalidCredits
	}
	n, err := parseCreditsNumber(string(found[fieldCredits]))
	if err != nil || n < 1 {
		return 0, terms, bodyInvalidCredits
	}
	if raw, ok := found[fieldExpiresAt]; ok {
		var text string
		at, err := time.Time{}, json.Unmarshal(raw, &text)
		if err == nil {
			at, err = time.Parse(time.RFC3339, text)
		}
		if _, storable := account.StoredExpiry(at); err != nil || !storable {
			return 0, terms, bodyInvalidExpiresAt // past what a record holds (year 9999 in UTC); a past one is the store's to refuse
		}
		terms.ExpiresAt = at
	}
	if raw, ok := found[fieldPriority]; ok {
		p, err := parseCreditsNumber(string(raw))
		if err != nil || p > account.MaxPriority {
			return 0, terms, bodyInvalidPriority
		}
		priority := int32(p)
		terms.Priority = &priority
	}
	if raw, ok := found[fieldReason]; ok {
		// A string only: null would read as no reason, as expiresAt and priority refuse it.
		if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &terms.Reason) != nil || !account.ValidReason(terms.Reason) {
			return 0, terms, bodyInvalidReason
		}
	}
	return n, terms, nil
}

// invalidMember is the 400 body of an invalid grant member.
func invalidMember(field string) []byte {
	switch field {
	case fieldExpiresAt:
		return bodyInvalidExpiresAt
	case fieldPriority:
		return bodyInvalidPriority
	case fieldReason:
		return bodyInvalidReason
	}
	return bodyInvalidCredits
}

// grants is GET /api/credits/grants: the user's lots with credits left, in spending order.
func (h *Handler) grants(ctx context.Context, w http.ResponseWriter, _ *http.Request, user account.UserID) {
	list, err := h.opts.Store.Grants(ctx, user)
	if err != nil {
		h.opts.Log.Error(err, "reading grants", "userID", user)
		writeJSON(w, http.StatusInternalServerError, bodyFetchError)
		return
	}
	writeJSON(w, http.StatusOK, grantsBody(list))
}

// voidGrant is POST /api/credits/grants/<id>/void: remove what is left of one lot (an empty
// body, or {}); exactly once per Idempotency-Key.
func (h *Handler) voidGrant(ctx context.Context, w http.ResponseWriter, r *http.Request, user account.UserID) {
	op, body, ok := readRequest(w, r, account.OpVoid, false)
	if !ok {
		return
	}
	if len(body) > 0 {
		if _, err := parseOnlyFields(body); err != nil {
			writeJSON(w, http.StatusBadRequest, bodyInvalidCredits)
			return
		}
	}
	op.Terms.ID = idOf(r.URL.Path, grantsPrefix)
	h.perform(ctx, w, user, op)
}

// grantView is one entry of GET /api/credits/grants.
type grantView struct {
	ID        string  `json:"id"`
	Credits   int64   `json:"credits"`
	Remaining int64   `json:"remaining"`
	ExpiresAt *string `json:"expiresAt"`
	Priority  int32   `json:"priority"`
	Source    string  `json:"source"`
	Reference string  `json:"reference,omitempty"`
	Reason    string  `json:"reason"`
	GrantedAt string  `json:"grantedAt"`
}

// grantsBody is {"grants":[...]}.
func grantsBody(list []account.GrantView) []byte {
	out := struct {
		Grants []grantView `json:"grants"`
	}{Grants: make([]grantView, len(list))}
	for i, g := range list {
		v := grantView{ID: g.ID, Credits: g.Credits, Remaining: g.Remaining, Priority: g.Priority, Source: g.Source,
			Reference: g.Reference, Reason: g.Reason, GrantedAt: g.GrantedAt.UTC().Format(time.RFC3339)}
		if g.ID == account.BalanceLotID {
			v.Credits = g.Remaining + g.Held // not a grant: what it holds
		}
		if !g.ExpiresAt.IsZero() {
			at := g.ExpiresAt.UTC().Format(time.RFC3339)
			v.ExpiresAt = &at
		}
		out.Grants[i] = v
	}
	data, _ := json.Marshal(out) // cannot fail: plain structs
	return data
}

// idRoute maps the path of one hold or lot (prefix, an ID, "/", one of actions) to its
// route pattern, and reports whether it is one. The ID is one segment, checked by the
// endpoint (a malformed one is not found, after authentication like any request).
func idRoute(path, prefix string, actions ...string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix)
	if !ok {
		return "", false
	}
	_, action, ok := strings.Cut(rest, "/")
	for _, a := range actions {
		if ok && action == a {
			return prefix + "{id}/" + action, true
		}
	}
	return "", false
}

// idOf is the ID a hold's or lot's path names.
func idOf(path, prefix string) string {
	id, _, _ := strings.Cut(strings.TrimPrefix(path, prefix), "/")
	return id
}
