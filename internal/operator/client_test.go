package operator_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitread/usercredits-operator/internal/operator/options"
	"github.com/gitread/usercredits-operator/pkg/client"
)

// tokenFile writes a ServiceAccount token for the API's audience where a projected volume
// would put it.
func tokenFile(t *testing.T, serviceAccount, clusterRole string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(serviceAccountToken(t, serviceAccount, clusterRole)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newClient(t *testing.T, base, tokenPath string, transport http.RoundTripper) *client.Client {
	t.Helper()
	c, err := client.New(client.Options{BaseURL: base, TokenFile: tokenPath, Backoff: 20 * time.Millisecond,
		HTTPClient: &http.Client{Timeout: 5 * time.Second, Transport: transport}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGoClientAgainstTheOperator: every call, its typed errors, and token rotation.
func TestGoClientAgainstTheOperator(t *testing.T) {
	ctx := context.Background()
	user := "user_GoClient1"
	admin := newClient(t, apiBase, tokenFile(t, "go-client-admin", "credits-admin"), nil)
	if n, err := admin.Set(ctx, user, 10); err != nil || n != 10 {
		t.Fatalf("Set: %d %v", n, err)
	}
	if n, err := admin.Grant(ctx, user, 5, client.WithIdempotencyKey("cs_go_1")); err != nil || n != 15 {
		t.Fatalf("Grant: %d %v", n, err)
	}
	if n, err := admin.Grant(ctx, user, 5, client.WithIdempotencyKey("cs_go_1")); err != nil || n != 15 {
		t.Fatalf("Grant again with the same key: %d %v (want the original answer)", n, err)
	}
	if n, err := admin.Consume(ctx, user, 3); err != nil || n != 12 {
		t.Fatalf("Consume: %d %v", n, err)
	}
	hold, err := admin.Reserve(ctx, user, 4, 10*time.Minute)
	if err != nil || hold.Credits != 8 || hold.ID == "" {
		t.Fatalf("Reserve: %+v %v", hold, err)
	}
	if n, err := admin.CapturePart(ctx, user, hold.ID, 1); err != nil || n != 11 {
		t.Fatalf("CapturePart: %d %v", n, err)
	}
	other, _ := admin.Reserve(ctx, user, 2, 0)
	if n, err := admin.Release(ctx, user, other.ID); err != nil || n != 11 {
		t.Fatalf("Release: %d %v", n, err)
	}
	if n, err := admin.Balance(ctx, user); err != nil || n != 11 {
		t.Fatalf("Balance: %d %v", n, err)
	}
	if h, err := admin.Transactions(ctx, user); err != nil || len(h) != 7 || h[0].Type != "release" || h[0].At.IsZero() {
		t.Fatalf("Transactions: %+v %v", h, err)
	}

	var short *client.InsufficientCreditsError
	if _, err := admin.Consume(ctx, user, 100); !errors.Is(err, client.ErrInsufficientCredits) || !errors.As(err, &short) || short.Balance != 11 {
		t.Fatalf("overdraw: %v", err)
	}
	if _, err := admin.Capture(ctx, user, other.ID); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("capture after release: %v", err)
	}
	if _, err := admin.Release(ctx, user, "rsv_unknown"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("unknown hold: %v", err)
	}
	viewer := newClient(t, apiBase, tokenFile(t, "go-client-viewer", "credits-viewer"), nil)
	if _, err := viewer.Consume(ctx, user, 1); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("viewer consumes: %v", err)
	}

	// Kubelet rotates the projected token: the client reads the file for every request.
	path := tokenFile(t, "go-client-rotated", "credits-viewer")
	rotated := newClient(t, apiBase, path, nil)
	if _, err := rotated.Balance(ctx, user); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("not-a-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := rotated.Balance(ctx, user); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("after the token file changed to garbage: %v", err)
	}
	if err := os.WriteFile(path, []byte(serviceAccountToken(t, "go-client-rotated", "credits-viewer")), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := rotated.Balance(ctx, user); err != nil {
		t.Fatalf("after a new token was written: %v", err)
	}
}

// lostAnswers lets the server apply the first n POSTs, then reports a timeout instead of
// their answers, as a network failure after the server did the work would.
type lostAnswers struct {
	n    atomic.Int32
	lost atomic.Int32
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout (the answer was lost)" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func (l *lostAnswers) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || req.Method != http.MethodPost || l.n.Add(-1) < 0 {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	l.lost.Add(1)
	return nil, timeoutError{}
}

// TestGoClientRetriesALostAnswerOnce: the answer to a consume is lost after the operator
// applied it; the client retries with the same key and the change is applied once.
func TestGoClientRetriesALostAnswerOnce(t *testing.T) {
	ctx := context.Background()
	user := "user_GoClientLost1"
	path := tokenFile(t, "go-client-lost", "credits-admin")
	setup := newClient(t, apiBase, path, nil)
	if _, err := setup.Set(ctx, user, 10); err != nil {
		t.Fatal(err)
	}
	lossy := &lostAnswers{}
	lossy.n.Store(2)
	c := newClient(t, apiBase, path, lossy)
	n, err := c.Consume(ctx, user, 3)
	if err != nil || n != 7 {
		t.Fatalf("consume through two lost answers: %d %v", n, err)
	}
	if lossy.lost.Load() != 2 {
		t.Fatalf("%d answers were lost; the test did not exercise the retry", lossy.lost.Load())
	}
	if got := storedBalanceOf(t, user); got != 7 {
		t.Fatalf("stored %d after one consume of 3 retried twice, want 7", got)
	}
}

// TestGoClientWaitsOutTheRateLimit: 429s are retried after Retry-After, and succeed.
func TestGoClientWaitsOutTheRateLimit(t *testing.T) {
	ctx := context.Background()
	base := extraReplica(t, func(o *options.Options) { o.API.ServiceAccountRateLimit = 2 })
	c := newClient(t, base, tokenFile(t, "go-client-limited", "credits-viewer"), nil)
	start := time.Now()
	for i := range 8 {
		if _, err := c.Balance(ctx, "user_GoClientLimited1"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if elapsed := time.Since(start); elapsed < time.Second {
		t.Fatalf("8 calls at 2/s (burst 4) took %v: the rate limit was not met", elapsed)
	}
}
