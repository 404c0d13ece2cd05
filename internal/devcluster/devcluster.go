// Package devcluster runs a throw-away local control plane (kube-apiserver + etcd) for
// `make run` on a machine with no cluster configured.
package devcluster

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Cluster is a running local control plane with the UserCredits CRD installed.
type Cluster struct {
	env *envtest.Environment
	// Config is an admin connection to the control plane.
	Config *rest.Config
	// KubeconfigPath is where the admin kubeconfig for kubectl was written.
	KubeconfigPath string
}

// Start starts kube-apiserver and etcd from KUBEBUILDER_ASSETS (see hack/control-plane-binaries.sh),
// installs the CRDs in crdDir and writes an admin kubeconfig to kubeconfigPath.
func Start(crdDir, kubeconfigPath string) (*Cluster, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, fmt.Errorf("no cluster is configured and KUBEBUILDER_ASSETS is unset: run `make run`, which builds the local control plane, or set KUBECONFIG")
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{crdDir}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the local control plane: %w", err)
	}
	c := &Cluster{env: env, Config: cfg, KubeconfigPath: kubeconfigPath}
	if err := c.writeKubeconfig(); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) writeKubeconfig() error {
	return WriteAdminKubeconfig(c.env, "local-admin", c.KubeconfigPath)
}

// WriteAdminKubeconfig adds a cluster-admin user (group system:masters) to a running
// control plane and writes a kubeconfig for it to path, for kubectl and other tools.
func WriteAdminKubeconfig(env *envtest.Environment, userName, path string) error {
	user, err := env.AddUser(envtest.User{Name: userName, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("creating the admin user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("rendering the kubeconfig: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// Stop stops the control plane and removes its data and the kubeconfig.
func (c *Cluster) Stop() error {
	_ = os.Remove(c.KubeconfigPath)
	return c.env.Stop()
}

// ClusterConfigured reports whether the standard client configuration rules find a cluster:
// an explicit kubeconfig path, $KUBECONFIG, in-cluster service variables, or ~/.kube/config.
func ClusterConfigured(kubeconfigFlag string) bool {
	if kubeconfigFlag != "" || os.Getenv(clientcmd.RecommendedConfigPathEnvVar) != "" || os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		return true
	}
	_, err := os.Stat(clientcmd.RecommendedHomeFile)
	return err == nil
}
