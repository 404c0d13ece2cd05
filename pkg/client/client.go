// Package client is the Go client of the credits API for services in the cluster. It
// authenticates with the pod's projected ServiceAccount token (read again for every
// request, as kubelet rotates it) or any TokenSource, sends every change with an
// Idempotency-Key (its own unless given), retries timeouts, 429 and 5xx with backoff and
// the same key, and returns typed errors.
//
// The API honours a key for a bounded window only (grant keys: 30 days and the user's last
// 1,000 grants; the keys of every other change: 24 hours and the user's last 100 of them),
// so a retry is a replay within that window and a new change after it. A failed change's
// error carries its key (IdempotencyKeyOf, or errors.As to *ChangeError): to retry it later,
// send it again WithIdempotencyKey(key) inside the window. See docs/go-client.md.
//
//	c, err := client.New(client.Options{BaseURL: "http://usercredits-api.usercredits-system.svc"})
//	hold, err := c.Reserve(ctx, userID, 1, 10*time.Minute)
//	if err := generate(); err != nil {
//		_, _ = c.Release(ctx, userID, hold.ID)
//		return err
//	}
//	_, err = c.Capture(ctx, userID, hold.ID)
//
// Grants are lots with their own expiry and priority (Grant's WithExpiry, WithPriority,
// WithReason); Grants lists them and Void removes what is left of one.
package client

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultTokenFile is where docs/examples/readme-generator.yaml mounts the projected token.
const DefaultTokenFile = "/var/run/secrets/credits/token"

// Options configures a Client.
type Options struct {
	// BaseURL is the API's address, e.g. http://usercredits-api.usercredits-system.svc.
	BaseURL string
	// TokenFile holds the ServiceAccount token for the audience credits.gitread.dev
	// (default DefaultTokenFile). Set it or TokenSource, not both.
	TokenFile string
	// TokenSource supplies the bearer token instead of TokenFile, e.g. StaticToken for a
	// token from `make run` or `kubectl create token` on a laptop. It is asked for every
	// request, retries included, so it may rotate the token whenever it likes.
	TokenSource TokenSource
	// HTTPClient sends the requests (default: a 10s timeout per attempt).
	HTTPClient *http.Client
	// MaxAttempts bounds the tries of one call (default 5).
	MaxAttempts int
	// Backoff is the wait before the first retry; it doubles up to 5s (default 100ms). A
	// Retry-After from the API is honoured when longer.
	Backoff time.Duration
}

// Client calls the credits API. It is safe for concurrent use.
type Client struct {
	opts Options
}

// New returns a Client.
func New(opts Options) (*Client, error) {
	if _, err := url.Parse(opts.BaseURL); err != nil || opts.BaseURL == "" {
		return nil, fmt.Errorf("credits client: a base URL is required: %q", opts.BaseURL)
	}
	opts.BaseURL = strings.TrimRight(opts.BaseURL, "/")
	switch {
	case opts.TokenSource != nil && opts.TokenFile != "":
		return nil, errors.New("credits client: set TokenFile or TokenSource, not both")
	case opts.TokenSource == nil:
		opts.TokenSource = FileToken(cmp.Or(opts.TokenFile, DefaultTokenFile))
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 100 * time.Millisecond
	}
	return &Client{opts: opts}, nil
}

// Reservation is a hold on a user's credits.
type Reservation struct {
	ID string
	// Credits is the user's available balance after the hold was taken.
	Credits int64
}

// Transaction is one entry of a user's history.
type Transaction struct {
	// Type is set, consume, grant, purchase (a Stripe Checkout grant), reserve, capture,
	// release, expire (a hold, or credits of a lot whose time was up), void, refund (credits
	// a Stripe refund of a purchase took back), dispute (credits a Stripe dispute took) or
	// reinstate (credits a won dispute returned).
	Type string `json:"type"`
	// Credits is, for a set, the balance it set; otherwise what the change moved.
	Credits int64 `json:"credits"`
	// Balance is the available balance after the change.
	Balance int64     `json:"balance"`
	At      time.Time `json:"at"`
	// Reference is the Checkout Session ID of a purchase, refund, dispute or reinstate, or
	// the lot an expire or void removed credits from; empty otherwise.
	Reference string `json:"reference,omitempty"`
	// Unrecoverable, on a refund, is the credits it should have taken back that had been
	// spent already (Credits is what it took).
	Unrecoverable int64 `json:"unrecoverable,omitempty"`
}

// CallOption adjusts one call.
type CallOption func(*call)

// WithIdempotencyKey sends key (1–255 visible ASCII characters) instead of a generated
// one. It is how a change is retried later: with the key of its failed call
// (IdempotencyKeyOf), or with a key made before the call and stored with the job (the job's
// ID, or NewIdempotencyKey), so that a caller that crashed or restarted repeats the same
// change. Within the API's key window (30 days for grants, 24 hours for every other change;
// docs/go-client.md) the repeat answers the original result and changes nothing; after it,
// the repeat is a new change. A key is one change of one user: the same key with another
// operation or amount is ErrConflict.
func WithIdempotencyKey(key string) CallOption { return func(c *call) { c.key = key } }

// NewIdempotencyKey returns a fresh random key, as the client makes for a call without
// WithIdempotencyKey: make one before a change and store it when the change must be
// retried safely after the caller restarts.
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	return "go-" + hex.EncodeToString(b[:])
}

// Balance returns userID's available credits.
func (c *Client) Balance(ctx context.Context, userID string) (int64, error) {
	var out struct {
		Credits int64 `json:"credits"`
	}
	return out.Credits, c.do(ctx, http.MethodGet, "/api/credits", userID, nil, &out, nil)
}

// Set sets userID's available credits (the update verb).
func (c *Client) Set(ctx context.Context, userID string, credits int64, opts ...CallOption) (int64, error) {
	return c.change(ctx, "/api/credits", userID, map[string]any{"credits": credits}, opts)
}

// Consume spends n credits of userID's; ErrInsufficientCredits when there are not enough.
func (c *Client) Consume(ctx context.Context, userID string, n int64, opts ...CallOption) (int64, error) {
	return c.change(ctx, "/api/credits/consume", userID, map[string]any{"credits": n}, opts)
}

// Grant adds n credits to userID's as a lot of their own (the grant verb) and returns the
// available balance after it. Optional terms: WithExpiry, WithPriority, WithReason (without
// them the lot never expires and has priority 50). ErrConflict when the key was used for
// another grant (other credits or terms), or when the user has 100 lots with credits left
// and none of these terms to join.
func (c *Client) Grant(ctx context.Context, userID string, n int64, opts ...CallOption) (int64, error) {
	return c.change(ctx, grantPath, userID, map[string]any{"credits": n}, opts)
}

// Reserve holds n credits of userID's for ttl (the API's default when 0), until Capture or
// Release, or until it expires and returns by itself.
func (c *Client) Reserve(ctx context.Context, userID string, n int64, ttl time.Duration, opts ...CallOption) (Reservation, error) {
	body := map[string]any{"credits": n}
	if ttl > 0 {
		body["ttlSeconds"] = int64((ttl + time.Second - 1) / time.Second)
	}
	var out struct {
		ReservationID string `json:"reservationId"`
		Credits       int64  `json:"credits"`
	}
	err := c.do(ctx, http.MethodPost, "/api/credits/reserve", userID, body, &out, opts)
	return Reservation{ID: out.ReservationID, Credits: out.Credits}, err
}

// Capture spends a whole hold.
func (c *Client) Capture(ctx context.Context, userID, reservationID string, opts ...CallOption) (int64, error) {
	return c.change(ctx, holdPath(reservationID, "capture"), userID, nil, opts)
}

// CapturePart spends n credits of a hold and returns the rest to the balance.
func (c *Client) CapturePart(ctx context.Context, userID, reservationID string, n int64, opts ...CallOption) (int64, error) {
	return c.change(ctx, holdPath(reservationID, "capture"), userID, map[string]any{"credits": n}, opts)
}

// Release returns a whole hold to the balance.
func (c *Client) Release(ctx context.Context, userID, reservationID string, opts ...CallOption) (int64, error) {
	return c.change(ctx, holdPath(reservationID, "release"), userID, nil, opts)
}

// Transactions returns userID's last 100 changes, newest first.
func (c *Client) Transactions(ctx context.Context, userID string) ([]Transaction, error) {
	var out struct {
		Transactions []Transaction `json:"transactions"`
	}
	return out.Transactions, c.do(ctx, http.MethodGet, "/api/credits/transactions", userID, nil, &out, nil)
}

func holdPath(id, action string) string {
	return "/api/credits/reservations/" + url.PathEscape(id) + "/" + action
}

// change sends a change and returns the available balance it answers.
func (c *Client) change(ctx context.Context, path, userID string, body map[string]any, opts []CallOption) (int64, error) {
	var out struct {
		Credits int64 `json:"credits"`
	}
	return out.Credits, c.do(ctx, http.MethodPost, path, userID, body, &out, opts)
}

// call is one logical call, over its attempts.
type call struct {
	key   string
	terms grantTerms // Grant's only
}

// do sends one call: a change's attempts all carry the same Idempotency-Key, which its
// error carries too (*ChangeError), and every attempt asks the TokenSource afresh.
func (c *Client) do(ctx context.Context, method, path, userID string, body map[string]any, out any, opts []CallOption) error {
	if method != http.MethodPost {
		return c.send(ctx, method, path, userID, nil, "", out)
	}
	cl := call{}
	for _, o := range opts {
		o(&cl)
	}
	if cl.key == "" {
		cl.key = NewIdempotencyKey()
	}
	if cl.terms.set() {
		if path != grantPath {
			return &ChangeError{Key: cl.key, Err: errTermsNotForThisCall(path)}
		}
		cl.terms.addTo(body)
	}
	var payload []byte
	if body != nil {
		payload, _ = json.Marshal(body)
	}
	if err := c.send(ctx, method, path, userID, payload, cl.key, out); err != nil {
		return &ChangeError{Key: cl.key, Err: err}
	}
	return nil
}

// send makes up to MaxAttempts attempts of one request, with backoff between them.
func (c *Client) send(ctx context.Context, method, path, userID string, payload []byte, key string, out any) error {
	target := c.opts.BaseURL + path + "?userId=" + url.QueryEscape(userID)
	wait := c.opts.Backoff
	var lastErr error
	for attempt := 1; ; attempt++ {
		retryAfter, err := c.attempt(ctx, method, target, key, payload, out)
		if err == nil || !retryable(err) || attempt >= c.opts.MaxAttempts {
			return err
		}
		lastErr = err
		wait = max(wait, retryAfter)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("%w (after %d attempts, last: %v)", ctx.Err(), attempt, lastErr)
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// attempt sends one request; retryAfter is the API's Retry-After, when it gave one.
func (c *Client) attempt(ctx context.Context, method, target, key string, payload []byte, out any) (time.Duration, error) {
	token, err := c.opts.TokenSource.Token(ctx)
	if err != nil {
		return 0, fmt.Errorf("credits client: getting the token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(payload))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, &transportError{err} // a lost answer: retried with the same key
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, &transportError{err}
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, out); err != nil {
			return 0, fmt.Errorf("credits client: decoding %s: %w", data, err)
		}
		return 0, nil
	}
	secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	return time.Duration(secs) * time.Second, apiError(resp.StatusCode, data)
}

// retryable reports whether a failed attempt may be sent again with the same key.
func retryable(err error) bool {
	var t *transportError
	return errors.As(err, &t) || errors.Is(err, ErrTooManyRequests) || errors.Is(err, ErrServer)
}

type transportError struct{ err error }

func (e *transportError) Error() string { return "credits client: " + e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }
