package e2e

// The package's one control plane, with config/default applied once, and the manager
// binary built once: every test runs its own manager process against them, with its own
// flags and environment, so that each documented setting is observed through the binary
// as shipped rather than through a Config built by hand.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/kubernetes"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/controlplane"
	"github.com/gitread/usercredits-operator/internal/operator"
	"github.com/gitread/usercredits-operator/test/framework"
)

// fixture is what every test of the package shares.
type fixture struct {
	c *cluster
	// bin is the built manager binary.
	bin string
	// kubeconfig holds the operator's only credential: its ServiceAccount's token, bound
	// by config/rbac.
	kubeconfig string
	// signer stands for the Clerk instance: CLERK_JWT_KEY is its public key.
	signer *auth.Signer
	// manifests are config/default as kustomize renders it.
	manifests []byte
}

var suite fixture

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	start := time.Now()
	// The tests' own cluster clients log only what goes wrong (the managers under test log
	// to their own output).
	ctrllog.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	dir, err := os.MkdirTemp("", "e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)

	// The build is CPU work and the control plane's start mostly waiting: overlap them.
	type built struct {
		bin string
		err error
	}
	build := make(chan built, 1)
	go func() {
		bin, err := framework.BuildManager(dir)
		build <- built{bin, err}
	}()
	fc, setupErr := setUp(dir)
	b := <-build
	if fc != nil {
		defer func() { _ = fc.Stop() }()
	}
	if setupErr == nil {
		setupErr = b.err
	}
	if setupErr != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", setupErr)
		return 1
	}
	suite.bin = b.bin
	fmt.Fprintf(os.Stderr, "e2e setup (control plane, config/default, manager build) took %v\n", time.Since(start).Round(time.Millisecond))
	return m.Run()
}

// setUp starts the control plane and applies config/default as a platform team would: the
// server must accept all of it, first as a dry run (namespaced objects need their
// namespace to exist for that), then for real, then again as a GitOps resync would.
func setUp(dir string) (*framework.Cluster, error) {
	// No CRD: config/default installs it, as a user would.
	fc, err := framework.StartCluster(operator.NewScheme(), framework.ClusterOptions{WithoutCRDs: true})
	if err != nil {
		return nil, err
	}
	c := &cluster{env: fc.Env, cfg: fc.Config, dir: dir}
	suite.c = c
	if c.clientset, err = kubernetes.NewForConfig(fc.Config); err != nil {
		return fc, err
	}
	c.adminKubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := controlplane.WriteAdminKubeconfig(fc.Env, "e2e-admin", c.adminKubeconfig); err != nil {
		return fc, err
	}
	out, err := c.run(nil, "kustomize", "config/default")
	if err != nil {
		return fc, err
	}
	suite.manifests = []byte(out)
	steps := []struct {
		stdin []byte
		args  []string
	}{
		{nil, []string{"create", "namespace", e2eNamespace}},
		{suite.manifests, []string{"apply", "--server-side", "--dry-run=server", "-f", "-"}},
		{suite.manifests, []string{"apply", "--server-side", "-f", "-"}},
		{suite.manifests, []string{"apply", "--server-side", "--dry-run=server", "-f", "-"}},
		{nil, []string{"wait", "--for=condition=Established", "crd/usercredits.credits.gitread.dev", "--timeout=30s"}},
	}
	for _, s := range steps {
		if _, err := c.run(s.stdin, s.args...); err != nil {
			return fc, err
		}
	}
	token, err := framework.ServiceAccountToken(context.Background(), c.clientset, e2eNamespace, "usercredits-controller-manager")
	if err != nil {
		return fc, err
	}
	if suite.kubeconfig, err = c.writeTokenKubeconfig(token); err != nil {
		return fc, err
	}
	suite.signer, err = auth.NewSigner("ins_e2e")
	return fc, err
}

// run runs the real kubectl as the cluster admin.
func (c *cluster) run(stdin []byte, args ...string) (string, error) {
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", c.adminKubeconfig}, args...)...)
	cmd.Dir = framework.RepoRoot()
	cmd.Stdin = strings.NewReader(string(stdin))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
