package operator_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/operator"
	"github.com/gitread/usercredits-operator/internal/operator/options"
)

// apiserverProxy stands between one replica and the real apiserver, as a slow network or
// a loaded apiserver would. It can hold the informer's first list of UserCredits (a replica
// that has not synced yet: at 100,000 users that list takes tens of seconds), delay what
// the UserCredits watch delivers (a replica whose watch lags), and counts the reads of one
// user's object the replica sends. Everything else passes through unchanged, with the
// suite's admin credentials, so the replica runs against the real apiserver.
type apiserverProxy struct {
	server *httptest.Server
	// watchLag delays each chunk of a UserCredits watch by this much.
	watchLag time.Duration

	mu sync.Mutex
	// listsHeld is closed when the informer's list may pass; nil: never held.
	listsHeld chan struct{}
	// heldLists counts informer lists that reached the proxy while held.
	heldLists int
	// gets counts GETs by object name; lists counts LISTs by selector (see selector).
	gets, lists map[string]int
	// initialWatchTimeouts are the timeoutSeconds of the informer's watches that stream its
	// first list of every UserCredits (sendInitialEvents).
	initialWatchTimeouts []string
}

// usercreditsPath is the collection path of UserCredits in the test namespace.
var usercreditsPath = "/apis/" + creditsv1alpha1.GroupVersion.Group + "/" + creditsv1alpha1.GroupVersion.Version +
	"/namespaces/" + testNamespace + "/usercredits"

// newAPIServerProxy starts a proxy to the suite's apiserver for the test's duration.
// holdLists holds the informer's first list of UserCredits until releaseLists.
func newAPIServerProxy(t *testing.T, holdLists bool, watchLag time.Duration) *apiserverProxy {
	t.Helper()
	target, err := url.Parse(restCfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(restCfg) // the suite's TLS and admin credentials
	if err != nil {
		t.Fatal(err)
	}
	p := &apiserverProxy{watchLag: watchLag, gets: map[string]int{}, lists: map[string]int{}}
	if holdLists {
		p.listsHeld = make(chan struct{})
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = target.Host
		},
		Transport:     transport,
		FlushInterval: -1, // watches stream
		ModifyResponse: func(resp *http.Response) error {
			if p.watchLag > 0 && isWatch(resp.Request) && resp.Request.URL.Path == usercreditsPath {
				resp.Body = newLaggedBody(resp.Body, p.watchLag)
			}
			return nil
		},
	}
	p.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.admit(r) {
			http.Error(w, "the test ended", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.server.Close)
	t.Cleanup(p.releaseLists) // before the server closes: a held list must not outlive the test
	return p
}

// isWatch reports whether r is a watch (a watch-list, the informer's first list since
// client-go 1.35, is one too).
func isWatch(r *http.Request) bool { return r.URL.Query().Get("watch") == "true" }

// selector is a list's field and label selectors, "fields|labels"; "" for none (the
// informer's list of every object).
func selector(q url.Values) string {
	if q.Get("fieldSelector") == "" && q.Get("labelSelector") == "" {
		return ""
	}
	return q.Get("fieldSelector") + "|" + q.Get("labelSelector")
}

// admit counts r and, for an informer list while lists are held, waits for releaseLists.
// It reports false when the request's caller gave up meanwhile.
func (p *apiserverProxy) admit(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return true
	}
	q := r.URL.Query()
	switch {
	case strings.HasPrefix(r.URL.Path, usercreditsPath+"/") && !isWatch(r):
		p.mu.Lock()
		p.gets[strings.TrimPrefix(r.URL.Path, usercreditsPath+"/")]++
		p.mu.Unlock()
	case r.URL.Path == usercreditsPath && selector(q) != "" && !isWatch(r):
		p.mu.Lock()
		p.lists[selector(q)]++
		p.mu.Unlock()
	case r.URL.Path == usercreditsPath && selector(q) == "" && (!isWatch(r) || q.Get("sendInitialEvents") == "true"):
		p.mu.Lock()
		held := p.listsHeld
		if held != nil {
			p.heldLists++
		}
		if isWatch(r) {
			p.initialWatchTimeouts = append(p.initialWatchTimeouts, q.Get("timeoutSeconds"))
		}
		p.mu.Unlock()
		if held != nil {
			select {
			case <-held:
			case <-r.Context().Done():
				return false
			}
		}
	}
	return true
}

// releaseLists lets the informer's list through: the replica syncs.
func (p *apiserverProxy) releaseLists() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.listsHeld != nil {
		close(p.listsHeld)
		p.listsHeld = nil
	}
}

// listsWereHeld reports how many informer lists the proxy has held.
func (p *apiserverProxy) listsWereHeld() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.heldLists
}

// reads returns the GETs of object name sent so far, and the LISTs whose selectors
// mention userID.
func (p *apiserverProxy) reads(name, userID string) (gets, lists int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for sel, n := range p.lists {
		if strings.Contains(sel, userID) {
			lists += n
		}
	}
	return p.gets[name], lists
}

// config is a rest.Config for a replica that talks to the apiserver through the proxy.
func (p *apiserverProxy) config() *rest.Config {
	return &rest.Config{Host: p.server.URL, QPS: restCfg.QPS, Burst: restCfg.Burst, UserAgent: "attacked-replica"}
}

// laggedBody delivers each chunk of a response body lag after it arrived: a watch whose
// events reach the replica late, in order.
type laggedBody struct {
	upstream io.ReadCloser
	lag      time.Duration
	chunks   chan laggedChunk
	closed   chan struct{}
	once     sync.Once
	pending  []byte
	err      error // the upstream's, once pending is drained
}

type laggedChunk struct {
	data []byte
	at   time.Time
	err  error
}

func newLaggedBody(upstream io.ReadCloser, lag time.Duration) io.ReadCloser {
	b := &laggedBody{upstream: upstream, lag: lag, chunks: make(chan laggedChunk, 1024), closed: make(chan struct{})}
	go func() {
		for {
			buf := make([]byte, 32<<10)
			n, err := upstream.Read(buf)
			c := laggedChunk{data: buf[:n], at: time.Now(), err: err}
			select {
			case b.chunks <- c:
			case <-b.closed:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return b
}

func (b *laggedBody) Read(p []byte) (int, error) {
	for len(b.pending) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		var c laggedChunk
		select {
		case c = <-b.chunks:
		case <-b.closed:
			return 0, io.ErrClosedPipe
		}
		select {
		case <-time.After(time.Until(c.at.Add(b.lag))):
		case <-b.closed:
			return 0, io.ErrClosedPipe
		}
		b.pending, b.err = c.data, c.err
	}
	n := copy(p, b.pending)
	b.pending = b.pending[n:]
	return n, nil
}

func (b *laggedBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return b.upstream.Close()
}

// proxiedReplica starts an operator configured as the suite's replicas (then by customize), talking to the
// apiserver through p, and returns its API base URL once the API answers, without waiting
// for its cache to sync (a replica serves, and is Ready, before that). It stops at the end
// of the test, after p has let any held list through. synced waits (up to timeout) for
// the replica's cache to hold every object.
func proxiedReplica(t *testing.T, p *apiserverProxy, customize ...func(*options.Options)) (base string, synced func(timeout time.Duration) bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	o := options.New()
	o.Namespace, o.Auth.Clerk = testNamespace, clerkConfig
	o.Manager.MetricsBindAddress, o.Manager.HealthProbeBindAddress = "0", "0"
	o.API.BindAddress, o.API.AllowUserWrites, o.API.RequestTimeout = "127.0.0.1:0", true, requestTimeout
	o.API.UserRateLimit = 0
	for _, c := range customize {
		c(o)
	}
	op, err := operator.New(ctx, p.config(), o, func(m *ctrl.Options) { m.Controller.SkipNameValidation = ptr.To(true) })
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- op.Manager.Start(ctx) }()
	t.Cleanup(func() {
		// Let the replica sync before it stops, so that it stops as a synced replica does.
		p.releaseLists()
		syncCtx, syncCancel := context.WithTimeout(ctx, 10*time.Second)
		synced := op.Manager.GetCache().WaitForCacheSync(syncCtx)
		syncCancel()
		cancel()
		if !synced {
			t.Error("the proxied replica never synced once its lists were let through")
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the proxied replica stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the proxied replica did not stop within 30s")
		}
	})
	base = "http://" + op.APIAddress()
	synced = func(timeout time.Duration) bool {
		c, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return op.Manager.GetCache().WaitForCacheSync(c)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/api/credits")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return base, synced
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the proxied replica's API did not answer within 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
