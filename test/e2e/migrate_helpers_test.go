package e2e

// Helpers of the kubectl plugin's tests (migrate_test.go): the built plugin on kubectl's
// PATH, a ServiceAccount bound to a shipped ClusterRole as the plugin's only credential,
// and reads of the objects it writes.

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/operator"
	"github.com/gitread/usercredits-operator/test/framework"
)

// pluginUser runs `kubectl credits` (the built plugin, found on PATH by kubectl) as one
// ServiceAccount, whose token is its kubeconfig's only credential.
type pluginUser struct {
	dir        string // holds kubectl-credits
	kubeconfig string
}

// buildPlugin builds cmd/kubectl-credits into a directory of its own.
func buildPlugin(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := framework.Build(dir, "./cmd/kubectl-credits", "kubectl-credits"); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newPluginUser makes ServiceAccount name of namespace, binds it to clusterRole in each of
// namespaces, and returns the plugin run with its token.
func newPluginUser(t *testing.T, pluginDir, namespace, name, clusterRole string, namespaces ...string) pluginUser {
	t.Helper()
	c := suite.c
	for _, ns := range namespaces {
		if err := bindIn(c, ns, namespace, name, clusterRole); err != nil {
			t.Fatal(err)
		}
	}
	token := c.token(t, namespace, name)
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: c.cfg.Host, CertificateAuthorityData: c.cfg.CAData}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: name}
	kc.CurrentContext = "e2e"
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return pluginUser{dir: pluginDir, kubeconfig: path}
}

// bindIn binds ClusterRole role to ServiceAccount saNamespace/name in namespace.
func bindIn(c *cluster, namespace, saNamespace, name, role string) error {
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: saNamespace + "-" + name + "-" + role},
		RoleRef:    framework.ClusterRole(role),
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: saNamespace}},
	}
	_, err := c.clientset.RbacV1().RoleBindings(namespace).Create(context.Background(), binding, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// command is `kubectl credits args...` as the user, not started.
func (u pluginUser) command(args ...string) *exec.Cmd {
	cmd := exec.Command("kubectl", append([]string{"credits"}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+u.kubeconfig, "PATH="+u.dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return cmd
}

// run runs `kubectl credits args...` and returns its stdout, stderr and exit code.
func (u pluginUser) run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := u.command(args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// summaryCount is the count a summary line shows, e.g. summaryCount(out, "created").
func summaryCount(t *testing.T, summary, label string) string {
	t.Helper()
	for _, line := range strings.Split(summary, "\n") {
		fields := strings.Fields(strings.TrimPrefix(line, "  "+label))
		if strings.HasPrefix(line, "  "+label+" ") && len(fields) > 0 {
			return fields[0]
		}
	}
	t.Fatalf("no %q line in the summary:\n%s", label, summary)
	return ""
}

// createNamespace creates namespace unless it exists.
func createNamespace(t *testing.T, namespace string) {
	t.Helper()
	_, err := suite.c.clientset.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// adminClient reads and writes as the cluster admin (the tests' view, not the plugin's).
func adminClient(t *testing.T) client.Client {
	t.Helper()
	c, err := client.New(suite.c.cfg, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// usersIn reads namespace's UserCredits by user ID, as the admin.
func usersIn(t *testing.T, c client.Client, namespace string) map[string]creditsv1alpha1.UserCredits {
	t.Helper()
	list := &creditsv1alpha1.UserCreditsList{}
	if err := c.List(context.Background(), list, client.InNamespace(namespace)); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]creditsv1alpha1.UserCredits, len(list.Items))
	for _, obj := range list.Items {
		out[obj.Spec.UserID] = obj
	}
	return out
}
