package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// These tests pin what the client sends and returns against a loopback server; what the
// operator does with it (a replay within the key window) is tested against a real
// operator in internal/operator/client_test.go.

// recorded is what the server saw of one request.
type recorded struct {
	method, path, key, auth string
	query, body             string
}

// apiServer answers every request with status and body, and records the requests.
type apiServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []recorded
}

func newAPIServer(t *testing.T, status int, body string) *apiServer {
	t.Helper()
	s := &apiServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		payload, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.requests = append(s.requests, recorded{r.Method, r.URL.EscapedPath(), r.Header.Get("Idempotency-Key"), r.Header.Get("Authorization"), r.URL.RawQuery, string(payload)})
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *apiServer) seen() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.requests...)
}

func testClient(t *testing.T, base string, tokens TokenSource) *Client {
	t.Helper()
	c, err := New(Options{BaseURL: base, TokenSource: tokens, MaxAttempts: 3, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// changes are every method that changes money, called with opts.
var changes = map[string]func(ctx context.Context, c *Client, opts ...CallOption) error{
	"Set": func(ctx context.Context, c *Client, o ...CallOption) error {
		_, err := c.Set(ctx, "u", 1, o...)
		return err
	},
	"Consume": func(ctx context.Context, c *Client, o ...CallOption) error {
		_, err := c.Consume(ctx, "u", 1, o...)
		return err
	},
	"Grant": func(ctx context.Context, c *Client, o ...CallOption) error {
		_, err := c.Grant(ctx, "u", 1, o...)
		return err
	},
	"Reserve": func(ctx context.Context, c *Client, o ...CallOption) error {
		_, err := c.Reserve(ctx, "u", 1, 0, o...)
		return err
	},
	"Capture": func(ctx context.Context, c *Client, o ...CallOption) error {
		_, err := c.Capture(ctx, "u", "rsv_1", o...)
		return err
	},
	"CapturePart": func(ctx context.Context, c *Client, o ...CallOption) error {
		_, err := c.CapturePart(ctx, "u", "rsv_1", 1, o...)
		return err
	},
	"Release": func(ctx context.Context, c *Client, o ...CallOption) error {
		_, err := c.Release(ctx, "u", "rsv_1", o...)
		return err
	},
	"Void": func(ctx context.Context, c *Client, o ...CallOption) error {
		_, err := c.Void(ctx, "u", "lot_1", o...)
		return err
	},
}

// TestFailedChangeCarriesItsKey: after ErrServer (every attempt answered 503), the error of
// every change carries the one key all its attempts were sent with.
func TestFailedChangeCarriesItsKey(t *testing.T) {
	for name, change := range changes {
		srv := newAPIServer(t, http.StatusServiceUnavailable, `{"error":"Error updating credits"}`)
		err := change(context.Background(), testClient(t, srv.URL, StaticToken("t")))
		if !errors.Is(err, ErrServer) {
			t.Fatalf("%s: %v, want ErrServer", name, err)
		}
		var ce *ChangeError
		var apiErr *Error
		if !errors.As(err, &ce) || !errors.As(err, &apiErr) || apiErr.Status != 503 {
			t.Fatalf("%s: %#v is not a *ChangeError around the API's *Error", name, err)
		}
		seen := srv.seen()
		if len(seen) != 3 {
			t.Fatalf("%s: %d attempts, want 3", name, len(seen))
		}
		for _, r := range seen {
			if r.key == "" || r.key != ce.Key || r.key != IdempotencyKeyOf(err) {
				t.Fatalf("%s: attempt sent key %q, the error carries %q", name, r.key, ce.Key)
			}
		}
	}
}

// TestExplicitKeyIsSentAndReturned: WithIdempotencyKey's key is what every attempt sends,
// and what the error carries.
func TestExplicitKeyIsSentAndReturned(t *testing.T) {
	for name, change := range changes {
		srv := newAPIServer(t, http.StatusBadGateway, ``)
		err := change(context.Background(), testClient(t, srv.URL, StaticToken("t")), WithIdempotencyKey("job-42:"+name))
		if IdempotencyKeyOf(err) != "job-42:"+name {
			t.Fatalf("%s: the error carries %q", name, IdempotencyKeyOf(err))
		}
		for _, r := range srv.seen() {
			if r.key != "job-42:"+name {
				t.Fatalf("%s: sent key %q", name, r.key)
			}
		}
	}
	srv := newAPIServer(t, http.StatusOK, `{"success":true,"credits":3}`)
	c := testClient(t, srv.URL, StaticToken("t"))
	if _, err := c.Consume(context.Background(), "u", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Consume(context.Background(), "u", 1); err != nil {
		t.Fatal(err)
	}
	if seen := srv.seen(); seen[0].key == "" || seen[0].key == seen[1].key {
		t.Fatalf("two calls without a key sent %q and %q: each needs its own", seen[0].key, seen[1].key)
	}
}

// TestTimedOutChangeCarriesItsKey: a change whose context ends while it retries ends with
// the context's error, and with the key, as a lost answer may have been applied.
func TestTimedOutChangeCarriesItsKey(t *testing.T) {
	srv := newAPIServer(t, http.StatusServiceUnavailable, ``)
	c, err := New(Options{BaseURL: srv.URL, TokenSource: StaticToken("t"), MaxAttempts: 100, Backoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = c.Grant(ctx, "u", 5)
	if !errors.Is(err, context.DeadlineExceeded) || IdempotencyKeyOf(err) == "" || IdempotencyKeyOf(err) != srv.seen()[0].key {
		t.Fatalf("%v: want the deadline, with the key sent (%q)", err, srv.seen()[0].key)
	}
}

// TestRefusalIsTypedAndKeyed: a refusal keeps its typed error under the key.
func TestRefusalIsTypedAndKeyed(t *testing.T) {
	srv := newAPIServer(t, http.StatusPaymentRequired, `{"error":"Insufficient credits","credits":2}`)
	_, err := testClient(t, srv.URL, StaticToken("t")).Consume(context.Background(), "u", 5)
	var short *InsufficientCreditsError
	if !errors.Is(err, ErrInsufficientCredits) || !errors.As(err, &short) || short.Balance != 2 || IdempotencyKeyOf(err) == "" {
		t.Fatalf("%v", err)
	}
	if len(srv.seen()) != 1 {
		t.Fatalf("a 402 was sent %d times; a refusal is not retried", len(srv.seen()))
	}
	if _, err := testClient(t, srv.URL, StaticToken("t")).Balance(context.Background(), "u"); IdempotencyKeyOf(err) != "" {
		t.Fatalf("a read carries a key: %v", err)
	}
}

// TestTokenSourceIsAskedForEveryRequest: each request, retries included, carries what the
// source answers at that moment.
func TestTokenSourceIsAskedForEveryRequest(t *testing.T) {
	srv := newAPIServer(t, http.StatusServiceUnavailable, ``)
	var asked atomic.Int32
	tokens := TokenFunc(func(ctx context.Context) (string, error) {
		return "token-" + strconv.Itoa(int(asked.Add(1))), nil
	})
	c := testClient(t, srv.URL, tokens)
	_, _ = c.Consume(context.Background(), "u", 1)
	_, _ = c.Balance(context.Background(), "u")
	seen := srv.seen()
	if len(seen) != 6 || asked.Load() != 6 {
		t.Fatalf("%d requests, the source was asked %d times", len(seen), asked.Load())
	}
	for i, r := range seen {
		if want := "Bearer token-" + strconv.Itoa(i+1); r.auth != want {
			t.Fatalf("request %d sent %q, want %q", i+1, r.auth, want)
		}
	}

	failing := testClient(t, srv.URL, TokenFunc(func(context.Context) (string, error) { return "", errors.New("no login") }))
	if _, err := failing.Balance(context.Background(), "u"); err == nil || len(srv.seen()) != 6 {
		t.Fatalf("a failing source: %v, and %d requests (want none sent)", err, len(srv.seen())-6)
	}
}

// TestTokenFileIsTheDefaultSource: TokenFile is read for every request; setting it and a
// TokenSource is refused.
func TestTokenFileIsTheDefaultSource(t *testing.T) {
	srv := newAPIServer(t, http.StatusOK, `{"credits":1}`)
	path := filepath.Join(t.TempDir(), "token")
	c, err := New(Options{BaseURL: srv.URL, TokenFile: path})
	if err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{"first", "second"} {
		if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Balance(context.Background(), "u"); err != nil {
			t.Fatal(err)
		}
	}
	if seen := srv.seen(); seen[0].auth != "Bearer first" || seen[1].auth != "Bearer second" {
		t.Fatalf("sent %q then %q", seen[0].auth, seen[1].auth)
	}
	if _, err := New(Options{BaseURL: srv.URL, TokenFile: path, TokenSource: StaticToken("t")}); err == nil {
		t.Fatal("TokenFile and TokenSource together were accepted")
	}
	if _, err := New(Options{BaseURL: srv.URL}); err != nil {
		t.Fatalf("no token option: %v (want the default file)", err)
	}
}
