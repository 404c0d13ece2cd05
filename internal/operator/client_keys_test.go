package operator_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/pkg/client"
)

// droppingProxy stands between the client and the operator. The operator applies every
// request, but the answers of the first `drop` POSTs are lost on the way back: the proxy
// answers 502 instead, as a load balancer whose upstream connection broke would. It notes
// whether the last answer it passed on was a replay.
type droppingProxy struct {
	*httptest.Server
	drop     atomic.Int32
	dropped  atomic.Int32
	replayed atomic.Bool
}

var errAnswerLost = errors.New("the answer was lost")

func newDroppingProxy(t *testing.T, target string) *droppingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &droppingProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method == http.MethodPost && p.drop.Add(-1) >= 0 {
			p.dropped.Add(1)
			return errAnswerLost // the reverse proxy closes the body and answers 502
		}
		p.replayed.Store(resp.Header.Get("Idempotent-Replayed") == "true")
		return nil
	}
	rp.ErrorLog = log.New(io.Discard, "", 0) // the 502s are the point
	p.Server = httptest.NewServer(rp)
	t.Cleanup(p.Close)
	return p
}

func storedUser(t *testing.T, user string) *creditsv1alpha1.UserCredits {
	t.Helper()
	obj := &creditsv1alpha1.UserCredits{}
	key := ctrlclient.ObjectKey{Namespace: testNamespace, Name: account.ObjectNameForUser(user)}
	if err := k8sClient.Get(context.Background(), key, obj); err != nil {
		t.Fatalf("reading %s: %v", user, err)
	}
	return obj
}

// TestGoClientRetryWithTheReturnedKeyIsAReplay: every change whose answers were all lost
// after the operator applied it ends in ErrServer carrying its Idempotency-Key; sent again
// later with that key, it answers the original result as a replay, and the stored state
// shows the change once.
func TestGoClientRetryWithTheReturnedKeyIsAReplay(t *testing.T) {
	ctx := context.Background()
	path := tokenFile(t, "go-client-keys", "credits-admin")
	direct := newClient(t, apiBase, path, nil)
	proxy := newDroppingProxy(t, apiBase)
	lossy, err := client.New(client.Options{BaseURL: proxy.URL, TokenFile: path, MaxAttempts: 2, Backoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		credits int64
		holdID  string
	}
	// Each case starts from a balance of 10 with one open hold of 2 (so 8 available).
	cases := []struct {
		name   string
		call   func(user, holdID string, opts ...client.CallOption) (outcome, error)
		want   int64 // the available balance answered and stored
		holds  int   // open holds after the change
		record string
	}{
		{"consume", func(user, _ string, o ...client.CallOption) (outcome, error) {
			n, err := lossy.Consume(ctx, user, 3, o...)
			return outcome{credits: n}, err
		}, 5, 1, "consume"},
		{"grant", func(user, _ string, o ...client.CallOption) (outcome, error) {
			n, err := lossy.Grant(ctx, user, 5, o...)
			return outcome{credits: n}, err
		}, 13, 1, "grant"},
		{"set", func(user, _ string, o ...client.CallOption) (outcome, error) {
			n, err := lossy.Set(ctx, user, 4, o...)
			return outcome{credits: n}, err
		}, 4, 1, "set"},
		{"reserve", func(user, _ string, o ...client.CallOption) (outcome, error) {
			hold, err := lossy.Reserve(ctx, user, 3, time.Hour, o...)
			return outcome{credits: hold.Credits, holdID: hold.ID}, err
		}, 5, 2, "reserve"},
		{"capture", func(user, id string, o ...client.CallOption) (outcome, error) {
			n, err := lossy.Capture(ctx, user, id, o...)
			return outcome{credits: n}, err
		}, 8, 0, "capture"},
		{"capture part", func(user, id string, o ...client.CallOption) (outcome, error) {
			n, err := lossy.CapturePart(ctx, user, id, 1, o...)
			return outcome{credits: n}, err
		}, 9, 0, "capture"},
		{"release", func(user, id string, o ...client.CallOption) (outcome, error) {
			n, err := lossy.Release(ctx, user, id, o...)
			return outcome{credits: n}, err
		}, 10, 0, "release"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			user := fmt.Sprintf("user_GoClientKeys%d", i)
			if _, err := direct.Set(ctx, user, 10); err != nil {
				t.Fatal(err)
			}
			hold, err := direct.Reserve(ctx, user, 2, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			before, _ := direct.Transactions(ctx, user)

			proxy.drop.Store(2)
			proxy.dropped.Store(0)
			_, err = c.call(user, hold.ID)
			key := client.IdempotencyKeyOf(err)
			if !errors.Is(err, client.ErrServer) || key == "" || proxy.dropped.Load() != 2 {
				t.Fatalf("with every answer lost: %v (key %q, %d answers dropped), want ErrServer with its key", err, key, proxy.dropped.Load())
			}
			if got := storedUser(t, user); got.Spec.Credits != c.want || len(got.Spec.Reservations) != c.holds {
				t.Fatalf("stored %d available and %d holds; the lost change was not applied once", got.Spec.Credits, len(got.Spec.Reservations))
			}

			// Later (a new process, say): the same change with the returned key.
			again, err := c.call(user, hold.ID, client.WithIdempotencyKey(key))
			if err != nil || again.credits != c.want || !proxy.replayed.Load() {
				t.Fatalf("retry with the returned key: %+v %v (replayed: %v), want the original answer %d, replayed", again, err, proxy.replayed.Load(), c.want)
			}
			got := storedUser(t, user)
			if got.Spec.Credits != c.want || len(got.Spec.Reservations) != c.holds {
				t.Fatalf("after the retry: stored %d available and %d holds, want %d and %d", got.Spec.Credits, len(got.Spec.Reservations), c.want, c.holds)
			}
			if c.name == "reserve" && !hasHold(got, again.holdID) {
				t.Fatalf("the replayed reservation ID %q is not an open hold: %+v", again.holdID, got.Spec.Reservations)
			}
			after, _ := direct.Transactions(ctx, user)
			if len(after) != len(before)+1 || after[0].Type != c.record {
				t.Fatalf("history grew by %d entries (newest %+v), want one %s", len(after)-len(before), after[0], c.record)
			}
		})
	}
}

func hasHold(obj *creditsv1alpha1.UserCredits, id string) bool {
	for _, h := range obj.Spec.Reservations {
		if h.ID == id {
			return true
		}
	}
	return false
}

// TestGoClientRetryAfterATimeoutIsAReplay: a consume whose every answer timed out (the
// operator applied it) ends with a timeout carrying its key; the retry with it is a replay.
func TestGoClientRetryAfterATimeoutIsAReplay(t *testing.T) {
	ctx := context.Background()
	user := "user_GoClientTimeout1"
	path := tokenFile(t, "go-client-timeout", "credits-admin")
	direct := newClient(t, apiBase, path, nil)
	if _, err := direct.Set(ctx, user, 10); err != nil {
		t.Fatal(err)
	}
	lossy := &lostAnswers{}
	lossy.n.Store(5) // MaxAttempts: every attempt's answer is lost
	c := newClient(t, apiBase, path, lossy)
	_, err := c.Consume(ctx, user, 3)
	var timeout interface{ Timeout() bool }
	key := client.IdempotencyKeyOf(err)
	if !errors.As(err, &timeout) || !timeout.Timeout() || key == "" || lossy.lost.Load() != 5 {
		t.Fatalf("consume with every answer lost: %v (key %q, %d lost), want a timeout with its key", err, key, lossy.lost.Load())
	}
	if n, err := direct.Consume(ctx, user, 3, client.WithIdempotencyKey(key)); err != nil || n != 7 {
		t.Fatalf("retry with the returned key: %d %v, want the original answer 7", n, err)
	}
	if got := storedBalanceOf(t, user); got != 7 {
		t.Fatalf("stored %d after one consume of 3 sent six times with one key, want 7", got)
	}
}
