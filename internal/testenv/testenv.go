// Package testenv starts a real kube-apiserver and etcd (envtest) for the project's
// integration tests, with the UserCredits CRD installed.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// k8sVersion must match K8S_VERSION in the Makefile.
const k8sVersion = "v1.37.2"

// RepoRoot is the repository's top directory, found from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// BinaryDir returns the directory holding kube-apiserver and etcd: $KUBEBUILDER_ASSETS when
// set, else the cache that hack/control-plane-binaries.sh fills.
func BinaryDir() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	root := os.Getenv("USERCREDITS_CACHE_DIR")
	if root == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", err
		}
		root = filepath.Join(cache, "usercredits-operator")
	}
	dir := filepath.Join(root, "control-plane", k8sVersion)
	if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err != nil {
		return "", fmt.Errorf("no kube-apiserver in %s: run `make test` (or `make control-plane`) to build it", dir)
	}
	return dir, nil
}

// New returns an envtest environment with the project's CRDs, not yet started.
func New() (*envtest.Environment, error) {
	dir, err := BinaryDir()
	if err != nil {
		return nil, err
	}
	return &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}, nil
}
