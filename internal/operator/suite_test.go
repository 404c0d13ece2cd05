package operator_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/operator"
	"github.com/gitread/usercredits-operator/internal/testenv"
)

const (
	testNamespace  = "credits-api-test"
	requestTimeout = 5 * time.Second
)

// The suite runs the operator as cmd/main.go assembles it (operator.Setup) against a real
// apiserver and etcd, authenticating through a loopback fake of Clerk's JWKS endpoint.
var (
	env       *envtest.Environment
	restCfg   *rest.Config
	k8sClient client.Client
	signer    *auth.Signer
	// clerkConfig checks Clerk tokens against the loopback fake of Clerk's JWKS.
	clerkConfig auth.ClerkConfig
	mgr         ctrl.Manager // the primary replica's manager
	apiBase     string       // the primary replica's API, http://127.0.0.1:port
	apiURL      string       // apiBase + /api/credits
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr)))
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
		return 1
	}
	var err error
	if env, err = testenv.New(); err != nil {
		return fail("envtest", err)
	}
	// A fixed certificate directory lets the outage test restart the apiserver with the
	// same serving certificate and client CA, so existing clients reconnect.
	certDir, err := os.MkdirTemp("", "usercredits-apiserver-")
	if err != nil {
		return fail("cert dir", err)
	}
	defer os.RemoveAll(certDir)
	env.ControlPlane.GetAPIServer().CertDir = certDir
	env.ControlPlaneStopTimeout = 3 * time.Second
	if restCfg, err = env.Start(); err != nil {
		return fail("starting envtest", err)
	}
	defer func() { _ = env.Stop() }()
	if k8sClient, err = client.New(restCfg, client.Options{Scheme: operator.NewScheme()}); err != nil {
		return fail("client", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace}}); err != nil {
		return fail("namespace", err)
	}
	if err := testenv.WarmUp(ctx, k8sClient, testNamespace); err != nil {
		return fail("warm-up", err)
	}

	if signer, err = auth.NewSigner("ins_test_1"); err != nil {
		return fail("signer", err)
	}
	clerkAPI := testenv.NewFakeClerk(signer.JWKS())
	defer clerkAPI.Close()
	if clerkConfig, _, err = operator.NewClerkConfig(operator.AuthOptions{SecretKey: clerkAPI.SecretKey, APIURL: clerkAPI.Server.URL}); err != nil {
		return fail("verifier", err)
	}
	primary, err := startReplica(ctx)
	if err != nil {
		return fail("operator", err)
	}
	mgr, apiBase = primary.mgr, primary.base
	apiURL = apiBase + "/api/credits"

	code := m.Run()
	cancel()
	if err := primary.wait(); err != nil {
		return fail("operator", err)
	}
	return code
}

// replica is one running operator: manager, controller and API on a loopback port.
type replica struct {
	mgr  ctrl.Manager
	base string // http://127.0.0.1:port
	done chan error
}

// startReplica starts an operator as cmd/main.go assembles it; it runs until ctx ends.
// edit, when given, changes its configuration from the suite's.
func startReplica(ctx context.Context, edit ...func(*operator.Config)) (*replica, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	opts := operator.ManagerOptions(testNamespace)
	opts.Metrics = metricsserver.Options{BindAddress: "0"}
	// Replicas are separate processes in production; here they share one process's
	// controller-name registry.
	opts.Controller.SkipNameValidation = ptr.To(true)
	m, err := ctrl.NewManager(restCfg, opts)
	if err != nil {
		return nil, err
	}
	cfg := operator.Config{
		Namespace: testNamespace, APIListener: listener, Clerk: clerkConfig,
		AllowUserWrites: true, RequestTimeout: requestTimeout,
	}
	for _, e := range edit {
		e(&cfg)
	}
	if err := operator.Setup(ctx, m, cfg); err != nil {
		return nil, err
	}
	scheme := "http"
	if cfg.APICertDir != "" {
		scheme = "https"
	}
	r := &replica{mgr: m, base: scheme + "://" + listener.Addr().String(), done: make(chan error, 1)}
	go func() { r.done <- m.Start(ctx) }()
	if !m.GetCache().WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("cache never synced")
	}
	return r, nil
}

// wait waits for a replica whose context has ended to stop.
func (r *replica) wait() error {
	select {
	case err := <-r.done:
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("operator did not stop within 30s")
	}
}
