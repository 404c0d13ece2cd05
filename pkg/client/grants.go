package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// grantPath is the path of Grant, the one call that takes grant terms.
const grantPath = "/api/credits/grant"

// Grant is one of a user's lots: credits granted together, with their own expiry and
// priority, spent in their turn (the lowest priority first, then the soonest expiry,
// never-expiring last, then the oldest).
type Grant struct {
	// ID names the lot: "lot_" and 16 hex digits, or "balance" for the credits that are no
	// grant (a set balance, or one from before lots). Void takes it.
	ID string `json:"id"`
	// Credits is how many were granted (for the balance lot: what it holds, held included).
	Credits int64 `json:"credits"`
	// Remaining is how many of them can be spent now: neither spent nor held.
	Remaining int64 `json:"remaining"`
	// ExpiresAt is when what is left is removed; zero when the lot never expires.
	ExpiresAt time.Time `json:"expiresAt"`
	// Priority orders spending: lower first (0–100, default 50).
	Priority int `json:"priority"`
	// Source is api (Grant), stripe (a Checkout Session), gitops (a CreditGrant) or set
	// (the balance lot).
	Source string `json:"source"`
	// Reference names what granted the lot (a Checkout Session ID); empty when nothing.
	Reference string `json:"reference,omitempty"`
	// Reason says why, as the grant gave it.
	Reason    string    `json:"reason"`
	GrantedAt time.Time `json:"grantedAt"`
}

// grantTerms are the optional terms of a Grant call.
type grantTerms struct {
	expiresAt time.Time
	priority  *int
	reason    string
}

func (t grantTerms) set() bool { return !t.expiresAt.IsZero() || t.priority != nil || t.reason != "" }

// addTo puts the terms into a grant's body. An expiry is sent to the second, as the API
// stores it (a retry with the same key then sends the very same terms).
func (t grantTerms) addTo(body map[string]any) {
	if !t.expiresAt.IsZero() {
		body["expiresAt"] = t.expiresAt.UTC().Format(time.RFC3339)
	}
	if t.priority != nil {
		body["priority"] = *t.priority
	}
	if t.reason != "" {
		body["reason"] = t.reason
	}
}

// WithExpiry makes a Grant's credits expire at at (it must be in the future): what is left of
// them then is removed. Without it they never expire. For Grant only.
func WithExpiry(at time.Time) CallOption { return func(c *call) { c.terms.expiresAt = at } }

// WithPriority sets a Grant's spending priority, 0–100: lower values are spent first (the
// API's default is 50). For Grant only.
func WithPriority(p int) CallOption { return func(c *call) { c.terms.priority = &p } }

// WithReason records why a Grant was made (at most 256 characters), shown by Grants. For
// Grant only.
func WithReason(reason string) CallOption { return func(c *call) { c.terms.reason = reason } }

// Grants returns userID's lots with credits left (to spend, or held by open holds), in the
// order they are spent.
func (c *Client) Grants(ctx context.Context, userID string) ([]Grant, error) {
	var out struct {
		Grants []Grant `json:"grants"`
	}
	return out.Grants, c.do(ctx, http.MethodGet, "/api/credits/grants", userID, nil, &out, nil)
}

// Void removes what is left of userID's lot lotID (the grant verb) and returns the available
// balance after it; spent credits stay spent, and credits an open hold took from the lot are
// removed when the hold is released or expires (a capture still spends them). ErrNotFound
// when the user has no such lot, ErrConflict when it has nothing left (voided or expired
// already, or spent).
func (c *Client) Void(ctx context.Context, userID, lotID string, opts ...CallOption) (int64, error) {
	return c.change(ctx, "/api/credits/grants/"+url.PathEscape(lotID)+"/void", userID, nil, opts)
}

// errTermsNotForThisCall refuses grant terms given to another call, before anything is sent.
func errTermsNotForThisCall(path string) error {
	return fmt.Errorf("credits client: %w: WithExpiry, WithPriority and WithReason are for Grant only, not %s", ErrInvalidRequest, path)
}
