package httpapi

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"

	"github.com/gitread/usercredits-operator/internal/auth"
)

// blockingVerifier holds requests until released, to observe shutdown with a request in flight.
type blockingVerifier struct{ entered, release chan struct{} }

func (b *blockingVerifier) Verify(ctx context.Context, token string) (auth.Principal, error) {
	b.entered <- struct{}{}
	<-b.release
	return auth.Principal{Kind: auth.KindClerkUser, UserID: "user_A"}, nil
}

func TestServerShutsDownGracefully(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	v := &blockingVerifier{entered: make(chan struct{}), release: make(chan struct{})}
	store := &memoryStore{balances: map[string]int64{"user_A": 42}}
	srv := &Server{Listener: ln, Handler: mustHandler(t, Options{Settings: testSettings(nil), Verifier: v, Store: store}), ShutdownTimeout: 5 * time.Second}
	if srv.Listening(nil) == nil {
		t.Fatal("ready before Start")
	}
	ctx, cancel := context.WithCancel(context.Background())
	runnable, err := srv.Runnable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if runnable.NeedLeaderElection() {
		t.Fatal("the API must serve on every replica, not only the leader")
	}
	stopped := make(chan error, 1)
	go func() { stopped <- runnable.Start(ctx) }()

	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/api/credits", nil)
		req.Header.Set("Authorization", "Bearer a.b.c")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		got <- result{status: resp.StatusCode, body: string(body)}
	}()

	<-v.entered // the request is in flight
	if err := srv.Listening(nil); err != nil {
		t.Fatalf("not ready while serving: %v", err)
	}
	cancel() // the manager stops
	time.Sleep(100 * time.Millisecond)
	if srv.Listening(nil) == nil {
		t.Error("still ready after shutdown began")
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("still accepting new connections after shutdown began")
	}
	close(v.release)
	r := <-got
	if r.err != nil || r.status != 200 || r.body != `{"credits":42}` {
		t.Fatalf("in-flight request during shutdown: %+v", r)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Start returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server did not stop")
	}
}

func TestAccessLogNeverContainsTheToken(t *testing.T) {
	var logs strings.Builder
	log := funcr.New(func(prefix, args string) { logs.WriteString(prefix + args + "\n") }, funcr.Options{Verbosity: 10})
	f := newFixture(t, true)
	f.handler = mustHandler(t, Options{Settings: testSettings(func(s *Settings) { s.AllowUserWrites = true }), Verifier: f.verifier, Store: f.store, Log: log})
	f.authed("GET", "")
	f.authed("POST", `{"credits":3}`)
	f.do("GET", "/api/credits", "", "Authorization", "Bearer "+f.token+"tampered")
	out := logs.String()
	if !strings.Contains(out, `"status"=200`) || !strings.Contains(out, `"status"=401`) {
		t.Fatalf("access log lacks the requests:\n%s", out)
	}
	for _, part := range strings.Split(f.token, ".") {
		if strings.Contains(out, part) {
			t.Fatalf("log contains part of the token:\n%s", out)
		}
	}
}
