package operator_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/operator"
	"github.com/gitread/usercredits-operator/internal/operator/options"
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
	clerkConfig = auth.ClerkConfig{SecretKey: clerkAPI.SecretKey, APIURL: clerkAPI.Server.URL}
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

// startReplica starts an operator as the manager binary assembles it (operator.New with
// Options); it runs until ctx ends. edit, when given, changes its options from the suite's.
func startReplica(ctx context.Context, edit ...func(*options.Options)) (*replica, error) {
	o := options.New()
	o.Namespace, o.Auth.Clerk = testNamespace, clerkConfig
	o.Manager.MetricsBindAddress, o.Manager.HealthProbeBindAddress = "0", "0"
	o.API.BindAddress, o.API.AllowUserWrites, o.API.RequestTimeout = "127.0.0.1:0", true, requestTimeout
	o.API.UserRateLimit = 0 // the suite's callers are not what is limited, except where a test says
	for _, e := range edit {
		e(o)
	}
	// Replicas are separate processes in production; here they share one process's
	// controller-name registry.
	op, err := operator.New(ctx, restCfg, o, func(m *ctrl.Options) { m.Controller.SkipNameValidation = ptr.To(true) })
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if o.API.CertDir != "" {
		scheme = "https"
	}
	wait, err := framework.RunManager(ctx, op.Manager)
	if err != nil {
		return nil, err
	}
	return &replica{mgr: op.Manager, base: scheme + "://" + op.APIAddress(), wait: wait}, nil
}
