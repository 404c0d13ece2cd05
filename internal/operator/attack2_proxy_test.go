package operator_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/operator"
	"github.com/gitread/usercredits-operator/internal/operator/options"
	"github.com/gitread/usercredits-operator/test/framework"
)

// The suite's primary replica runs a controller on the test namespace, which labels and
// unlabels objects within milliseconds. Some attacks need a namespace where the only
// controller is the one of the replica under attack, as in a one-replica deployment that
// restarts: attackNamespace makes one, and namespacedProxy/namespacedReplica are
// apiserverProxy/proxiedReplica for it.

// attackNamespaces numbers the namespaces attackNamespace makes: a namespace envtest
// deleted stays Terminating (no namespace controller), so a name is never used twice.
var attackNamespaces atomic.Int64

// attackNamespace creates a namespace of its own for one test, named after name, and
// returns its name.
func attackNamespace(t *testing.T, name string) string {
	t.Helper()
	name = fmt.Sprintf("%s-%d", name, attackNamespaces.Add(1))
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), ns) })
	return name
}

// namespacedProxy stands between one replica and the apiserver for the UserCredits of one
// namespace: it can hold the informer's first list (a replica warming up), delay every
// chunk of a UserCredits watch (a replica whose watch lags) and delay the controller's
// merge patches of UserCredits (a controller with a backlog: after an upgrade, it labels
// every object, at the client's QPS). Everything else passes.
type namespacedProxy struct {
	server   *httptest.Server
	path     string
	watchLag time.Duration
	// mergePatchDelay delays each merge patch of a UserCredits (the controller's; the API
	// writes JSON patches).
	mergePatchDelay time.Duration

	mu        sync.Mutex
	held      chan struct{}
	heldLists int
}

func newNamespacedProxy(t *testing.T, namespace string, holdLists bool, watchLag, mergePatchDelay time.Duration) *namespacedProxy {
	t.Helper()
	target, err := url.Parse(restCfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &namespacedProxy{watchLag: watchLag, mergePatchDelay: mergePatchDelay,
		path: "/apis/" + creditsv1alpha1.GroupVersion.Group + "/" + creditsv1alpha1.GroupVersion.Version + "/namespaces/" + namespace + "/usercredits"}
	if holdLists {
		p.held = make(chan struct{})
	}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target); r.Out.Host = target.Host },
		Transport:     transport,
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			if p.watchLag > 0 && isWatch(resp.Request) && resp.Request.URL.Path == p.path {
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
	t.Cleanup(p.releaseLists)
	return p
}

// admit holds the informer's list of every UserCredits of the namespace while lists are
// held, and delays merge patches.
func (p *namespacedProxy) admit(r *http.Request) bool {
	if r.Method == http.MethodPatch && p.mergePatchDelay > 0 && strings.HasPrefix(r.URL.Path, p.path+"/") &&
		strings.Contains(r.Header.Get("Content-Type"), "merge-patch") {
		select {
		case <-time.After(p.mergePatchDelay):
		case <-r.Context().Done():
			return false
		}
	}
	q := r.URL.Query()
	if r.Method != http.MethodGet || r.URL.Path != p.path || selector(q) != "" || (isWatch(r) && q.Get("sendInitialEvents") != "true") {
		return true
	}
	p.mu.Lock()
	held := p.held
	if held != nil {
		p.heldLists++
	}
	p.mu.Unlock()
	if held == nil {
		return true
	}
	select {
	case <-held:
		return true
	case <-r.Context().Done():
		return false
	}
}

func (p *namespacedProxy) releaseLists() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held != nil {
		close(p.held)
		p.held = nil
	}
}

// waitHeld waits until the replica's informer has asked for its first list (it is warming up).
func (p *namespacedProxy) waitHeld(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		n := p.heldLists
		p.mu.Unlock()
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the replica's informer never asked for its first list")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// attackedReplica is a replica started by namespacedReplica.
type attackedReplica struct {
	// base is the API's base URL.
	base string
	// synced waits (up to timeout) for the replica's cache to hold every object.
	synced func(timeout time.Duration) bool
	// ready waits (up to timeout) for /readyz to succeed, as a Service waits before it
	// sends the replica traffic; its error carries the failing checks.
	ready func(timeout time.Duration) error
	// stop stops the replica (at the latest when the test ends).
	stop func()
}

// namespacedReplica starts an operator configured as the suite's replicas, serving
// namespace through p, and returns once its API answers, without waiting for its cache or
// its readiness (the suite's proxiedReplica does the same).
func namespacedReplica(t *testing.T, p *namespacedProxy, namespace string) attackedReplica {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	o := options.New()
	o.Namespace, o.Auth.Clerk = namespace, clerkConfig
	probes := freeAddr(t)
	o.Manager.MetricsBindAddress, o.Manager.HealthProbeBindAddress = "0", probes
	o.API.BindAddress, o.API.AllowUserWrites, o.API.RequestTimeout = "127.0.0.1:0", true, requestTimeout
	o.API.UserRateLimit = 0
	cfg := &rest.Config{Host: p.server.URL, QPS: restCfg.QPS, Burst: restCfg.Burst, UserAgent: "attack2-replica"}
	op, err := operator.New(ctx, cfg, o, func(m *ctrl.Options) { m.Controller.SkipNameValidation = ptr.To(true) })
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- op.Manager.Start(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			p.releaseLists()
			c, cc := context.WithTimeout(ctx, 10*time.Second)
			op.Manager.GetCache().WaitForCacheSync(c)
			cc()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("the replica stopped with %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("the replica did not stop within 30s")
			}
		})
	}
	t.Cleanup(stop)
	r := attackedReplica{base: "http://" + op.APIAddress(), stop: stop}
	r.synced = func(timeout time.Duration) bool {
		c, cc := context.WithTimeout(ctx, timeout)
		defer cc()
		return op.Manager.GetCache().WaitForCacheSync(c)
	}
	r.ready = func(timeout time.Duration) error {
		var last error
		for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			resp, err := http.Get("http://" + probes + "/readyz?verbose")
			if err != nil {
				last = err
				continue
			}
			text, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("/readyz: %d %s", resp.StatusCode, strings.Join(strings.Fields(string(text)), " "))
		}
		return last
	}
	framework.Eventually(t, 10*time.Second, func() error {
		resp, err := http.Get(r.base + "/api/credits")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return r
}

// granterIn mints a token for ServiceAccount name in namespace, allowed to grant there
// (the shipped credits-admin role), bound to the API's audience.
func granterIn(t *testing.T, namespace, name string) string {
	t.Helper()
	ctx := context.Background()
	applyCallerRoles(t)
	cs, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := framework.BindServiceAccount(ctx, cs, namespace, name, framework.ClusterRole("credits-admin")); err != nil {
		t.Fatal(err)
	}
	tok, err := framework.ServiceAccountToken(ctx, cs, namespace, name, auth.DefaultServiceAccountAudience)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
