// Package framework is the shared test framework (in the style of cert-manager's
// test/integration/framework): a real control plane with the project's CRDs, the manager
// binary as a process, fakes of the outside world (Clerk), and the small helpers every
// suite needs. It is never linked into the manager.
package framework

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/controlplane"
)

// RepoRoot is the repository's top directory, found from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// NewControlPlane returns a control plane (kube-apiserver and etcd, not started) with the
// project's CRDs: the one way the integration tests, the end-to-end test and make bench
// start theirs.
func NewControlPlane() (*envtest.Environment, error) {
	return controlplane.New(filepath.Join(RepoRoot(), "config", "crd", "bases"))
}

// Eventually retries check every 50ms until it returns nil, failing t after timeout.
func Eventually(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WarmUp sends one server-side dry-run create of a UserCredits. A fresh kube-apiserver holds
// the first write of a new custom resource for about two seconds (measured: 2.00s, then
// 2–5ms); paying that once here keeps it out of the tests' request timeouts.
func WarmUp(ctx context.Context, c client.Client, namespace string) error {
	obj := &creditsv1alpha1.UserCredits{
		ObjectMeta: metav1.ObjectMeta{Name: "warm-up", Namespace: namespace},
		Spec:       creditsv1alpha1.UserCreditsSpec{UserID: "warm-up", Credits: 0},
	}
	return c.Create(ctx, obj, client.DryRunAll)
}

// LineContaining returns the first line of text that contains substr, or "".
func LineContaining(text, substr string) string {
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, substr) {
			return line
		}
	}
	return ""
}
