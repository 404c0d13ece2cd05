package framework

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// ClusterOptions adjust the control plane a suite starts.
type ClusterOptions struct {
	// Namespaces are created and warmed up (see WarmUp) once the control plane runs.
	Namespaces []string
	// WithoutCRDs starts a bare control plane: the test installs the CRD itself, as a user would.
	WithoutCRDs bool
	// CertDir fixes the apiserver's serving certificate directory, so that a restarted
	// apiserver keeps the certificate clients already trust.
	CertDir string
	// EtcdQuotaBytes, when set, is etcd's --quota-backend-bytes: its default (2 GiB) holds
	// a few hundred thousand UserCredits, not the million of make bench SCALE=1000000.
	EtcdQuotaBytes int64
}

// Cluster is a running control plane and an admin client to it, straight to the apiserver
// (assertions never read a stale cache).
type Cluster struct {
	Env    *envtest.Environment
	Config *rest.Config
	Client client.Client
}

// StartCluster starts a control plane with the project's CRDs for a test suite; Stop
// stops it.
func StartCluster(scheme *runtime.Scheme, opts ClusterOptions) (*Cluster, error) {
	env, err := NewControlPlane()
	if err != nil {
		return nil, err
	}
	if opts.WithoutCRDs {
		env.CRDDirectoryPaths = nil
	}
	if opts.CertDir != "" {
		env.ControlPlane.GetAPIServer().CertDir = opts.CertDir
		env.ControlPlaneStopTimeout = 3 * time.Second
	}
	if opts.EtcdQuotaBytes > 0 {
		if env.ControlPlane.Etcd == nil {
			env.ControlPlane.Etcd = &envtest.Etcd{}
		}
		env.ControlPlane.Etcd.Configure().Set("quota-backend-bytes", strconv.FormatInt(opts.EtcdQuotaBytes, 10))
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	c := &Cluster{Env: env, Config: cfg}
	if c.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		_ = env.Stop()
		return nil, err
	}
	ctx := context.Background()
	for _, ns := range opts.Namespaces {
		if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			_ = env.Stop()
			return nil, err
		}
		if !opts.WithoutCRDs {
			if err := WarmUp(ctx, c.Client, ns); err != nil {
				_ = env.Stop()
				return nil, fmt.Errorf("warm-up: %w", err)
			}
		}
	}
	return c, nil
}

// Stop stops the control plane.
func (c *Cluster) Stop() error { return c.Env.Stop() }

// RunManager starts mgr until ctx ends, waits for its cache to sync, and returns a func
// that waits (at most 30s) for it to stop once ctx has ended.
func RunManager(ctx context.Context, mgr ctrl.Manager) (wait func() error, err error) {
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("the manager's cache never synced")
	}
	return func() error {
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return fmt.Errorf("the manager did not stop within 30s")
		}
	}, nil
}

// RunTests runs a suite's tests with mgr running, and returns the suite's exit code: 1 when
// the manager fails to start or to stop cleanly.
func RunTests(m *testing.M, mgr ctrl.Manager) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait, err := RunManager(ctx, mgr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	cancel()
	if err := wait(); err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		return 1
	}
	return code
}
