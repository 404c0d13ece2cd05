// Package controlplane starts real kube-apiserver and etcd processes (controller-runtime's
// envtest) with the UserCredits CRD installed: the throw-away cluster of `make run`, and the
// one way every test and benchmark starts theirs (through test/framework). The binaries are
// built by hack/control-plane-binaries.sh for the Kubernetes version go.mod names.
package controlplane

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// K8sVersion is the Kubernetes version of the control plane: the one go.mod names through
// k8s.io/api (v0.X.Y is Kubernetes v1.X.Y), so that the version is written in one place.
// The manager reads it from its build information; a test binary, which carries none, from
// the go.mod of the module it runs in.
func K8sVersion() (string, error) {
	apiVersion := ""
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, m := range info.Deps {
			if m.Path == "k8s.io/api" {
				apiVersion = m.Version
			}
		}
	}
	if apiVersion == "" {
		var err error
		if apiVersion, err = requiredVersion("k8s.io/api"); err != nil {
			return "", err
		}
	}
	minor, ok := strings.CutPrefix(apiVersion, "v0.")
	if !ok {
		return "", fmt.Errorf("k8s.io/api %s is not a v0.X.Y staging version", apiVersion)
	}
	return "v1." + minor, nil
}

// requiredVersion finds the go.mod above the working directory and reads the version it
// requires of module.
func requiredVersion(module string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if f := strings.Fields(line); len(f) >= 2 && f[0] == module {
					return f[1], nil
				}
			}
			return "", fmt.Errorf("%s does not require %s", filepath.Join(dir, "go.mod"), module)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod found above the working directory")
		}
		dir = parent
	}
}

// BinaryDir returns the directory holding kube-apiserver and etcd: $KUBEBUILDER_ASSETS when
// set, else the cache that hack/control-plane-binaries.sh fills.
func BinaryDir() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	version, err := K8sVersion()
	if err != nil {
		return "", err
	}
	root := os.Getenv("USERCREDITS_CACHE_DIR")
	if root == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", err
		}
		root = filepath.Join(cache, "usercredits-operator")
	}
	dir := filepath.Join(root, "control-plane", version)
	if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err != nil {
		return "", fmt.Errorf("no kube-apiserver in %s: run `make test` (or `make control-plane`) to build it", dir)
	}
	return dir, nil
}

// New returns a control plane (not started) that installs the CRDs in crdDirs.
func New(crdDirs ...string) (*envtest.Environment, error) {
	dir, err := BinaryDir()
	if err != nil {
		return nil, err
	}
	return &envtest.Environment{BinaryAssetsDirectory: dir, CRDDirectoryPaths: crdDirs, ErrorIfCRDPathMissing: len(crdDirs) > 0}, nil
}

// Local is a running throw-away control plane for `make run`.
type Local struct {
	env *envtest.Environment
	// Config is an admin connection to the control plane.
	Config *rest.Config
	// KubeconfigPath is where the admin kubeconfig for kubectl was written.
	KubeconfigPath string
}

// StartLocal starts a control plane with the CRDs in crdDir and writes an admin kubeconfig
// to kubeconfigPath.
func StartLocal(crdDir, kubeconfigPath string) (*Local, error) {
	env, err := New(crdDir)
	if err != nil {
		return nil, fmt.Errorf("no cluster is configured and no local control plane is available (%w): run `make run`, which builds it, or set KUBECONFIG", err)
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the local control plane: %w", err)
	}
	l := &Local{env: env, Config: cfg, KubeconfigPath: kubeconfigPath}
	if err := WriteAdminKubeconfig(env, "local-admin", kubeconfigPath); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return l, nil
}

// Stop stops the control plane and removes its data and the kubeconfig.
func (l *Local) Stop() error {
	_ = os.Remove(l.KubeconfigPath)
	return l.env.Stop()
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

// ClusterConfigured reports whether the standard client configuration rules find a cluster:
// an explicit kubeconfig path, $KUBECONFIG, in-cluster service variables, or ~/.kube/config.
func ClusterConfigured(kubeconfigFlag string) bool {
	if kubeconfigFlag != "" || os.Getenv(clientcmd.RecommendedConfigPathEnvVar) != "" || os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		return true
	}
	_, err := os.Stat(clientcmd.RecommendedHomeFile)
	return err == nil
}
