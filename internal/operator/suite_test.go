package operator_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/operator"
	"github.com/gitread/usercredits-operator/test/framework"
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
	// A fixed certificate directory lets the outage test restart the apiserver with the
	// same serving certificate and client CA, so existing clients reconnect.
	certDir, err := os.MkdirTemp("", "usercredits-apiserver-")
	if err != nil {
		return fail("cert dir", err)
	}
	defer os.RemoveAll(certDir)
	cluster, err := framework.StartCluster(operator.NewScheme(), framework.ClusterOptions{Namespaces: []string{testNamespace}, CertDir: certDir})
	if err != nil {
		return fail("control plane", err)
	}
	defer func() { _ = cluster.Stop() }()
	env, restCfg, k8sClient = cluster.Env, cluster.Config, cluster.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	if signer, err = auth.NewSigner("ins_test_1"); err != nil {
		return fail("signer", err)
	}
	clerkAPI := framework.NewFakeClerk(signer.JWKS())
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
	base string // http(s)://127.0.0.1:port
	// wait waits for the replica to stop once its context has ended.
	wait func() error
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
	wait, err := framework.RunManager(ctx, m)
	if err != nil {
		return nil, err
	}
	return &replica{mgr: m, base: scheme + "://" + listener.Addr().String(), wait: wait}, nil
}
