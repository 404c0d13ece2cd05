package e2e

// Helpers of the end-to-end tests: the control plane, kubectl, ServiceAccount tokens and
// namespaces.

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/test/framework"
)

const e2eNamespace = "usercredits-system" // config/default's namespace

// cluster is the control plane the e2e test runs against.
type cluster struct {
	env             *envtest.Environment
	cfg             *rest.Config
	clientset       *kubernetes.Clientset
	adminKubeconfig string
	dir             string
}

// kubectl runs the real kubectl as the cluster admin.
func (c *cluster) kubectl(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	out, err := c.run(stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// token mints a token for ServiceAccount name (created if missing) in namespace.
func (c *cluster) token(t *testing.T, namespace, name string) string {
	t.Helper()
	token, err := framework.ServiceAccountToken(context.Background(), c.clientset, namespace, name)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// callerToken is what an in-cluster caller presents: a token for ServiceAccount name bound
// to the API's audience, minted as README says (kubectl create token --audience).
func (c *cluster) callerToken(t *testing.T, name string) string {
	t.Helper()
	return c.audienceToken(t, e2eNamespace, name, auth.DefaultServiceAccountAudience)
}

// audienceToken creates ServiceAccount name in namespace unless it exists, and mints a
// token for it bound to audience with kubectl create token.
func (c *cluster) audienceToken(t *testing.T, namespace, name, audience string) string {
	t.Helper()
	_, err := c.clientset.CoreV1().ServiceAccounts(namespace).Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return strings.TrimSpace(c.kubectl(t, nil, "create", "token", name, "-n", namespace, "--audience", audience))
}

// caller is a ServiceAccount of namespace bound there to the shipped caller ClusterRole
// clusterRole, and its token for the API's default audience.
func (c *cluster) caller(t *testing.T, namespace, name, clusterRole string) string {
	t.Helper()
	if err := framework.BindServiceAccount(context.Background(), c.clientset, namespace, name, framework.ClusterRole(clusterRole)); err != nil {
		t.Fatal(err)
	}
	return c.audienceToken(t, namespace, name, auth.DefaultServiceAccountAudience)
}

// installNamespace lets the operator serve namespace as well: the namespace, and in it
// the shipped namespaced Role and RoleBinding of config/rbac (as applied to
// usercredits-system), as a second install of config/default would create them.
func (c *cluster) installNamespace(t *testing.T, namespace string) {
	t.Helper()
	ctx := context.Background()
	rbac := c.clientset.RbacV1()
	_, err := c.clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return // a repeated run (-count)
	}
	if err != nil {
		t.Fatal(err)
	}
	role, err := rbac.Roles(e2eNamespace).Get(ctx, "usercredits-manager-namespace-role", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	binding, err := rbac.RoleBindings(e2eNamespace).Get(ctx, "usercredits-manager-namespace-rolebinding", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	role.ObjectMeta = metav1.ObjectMeta{Name: role.Name, Namespace: namespace}
	binding.ObjectMeta = metav1.ObjectMeta{Name: binding.Name, Namespace: namespace}
	if _, err := rbac.Roles(namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.RoleBindings(namespace).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// checkCertManagerOverlay renders config/cert-manager and checks that it runs the API
// over HTTPS from the Certificate's Secret.
func checkCertManagerOverlay(t *testing.T, c *cluster) {
	t.Helper()
	out := c.kubectl(t, nil, "kustomize", "config/cert-manager")
	for _, want := range []string{"kind: Certificate", "kind: Issuer", "secretName: usercredits-api-tls", "--api-cert-dir=/etc/usercredits/api-tls",
		"mountPath: /etc/usercredits/api-tls", "- usercredits-api.usercredits-system.svc", "port: 443"} {
		if !strings.Contains(out, want) {
			t.Errorf("config/cert-manager renders without %q", want)
		}
	}
}

// bind binds clusterRole to ServiceAccount name in the operator's namespace.
func (c *cluster) bind(t *testing.T, name, clusterRole string) {
	t.Helper()
	if err := framework.BindServiceAccount(context.Background(), c.clientset, e2eNamespace, name, framework.ClusterRole(clusterRole)); err != nil {
		t.Fatal(err)
	}
}

// writeTokenKubeconfig writes a kubeconfig whose only credential is token.
func (c *cluster) writeTokenKubeconfig(token string) (string, error) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: c.cfg.Host, CertificateAuthorityData: c.cfg.CAData}
	kc.AuthInfos["operator"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "operator"}
	kc.CurrentContext = "e2e"
	path := filepath.Join(c.dir, "operator.kubeconfig")
	return path, clientcmd.WriteToFile(*kc, path)
}

// stopGracefully sends SIGTERM, as the kubelet does, and checks the operator exits cleanly
// and releases its leader Lease, so that another replica takes over at once.
func stopGracefully(t *testing.T, c *cluster, op *framework.Process) {
	t.Helper()
	if err := op.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- op.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("operator exited with %v after SIGTERM", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("operator did not stop within 20s of SIGTERM")
	}
	lease, err := c.clientset.CoordinationV1().Leases(e2eNamespace).Get(context.Background(), "usercredits.credits.gitread.dev", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if holder := lease.Spec.HolderIdentity; holder != nil && *holder != "" {
		t.Fatalf("the Lease is still held by %q after a graceful stop", *holder)
	}
}
