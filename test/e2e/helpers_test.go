package e2e

// Helpers of the end-to-end test: a control plane, kubectl, ServiceAccount tokens, and the
// manager binary as a subprocess.

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/gitread/usercredits-operator/internal/controlplane"
	"github.com/gitread/usercredits-operator/internal/operator"
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

func startCluster(t *testing.T) *cluster {
	t.Helper()
	// No CRD: the test installs it from config/, as a user would.
	fc, err := framework.StartCluster(operator.NewScheme(), framework.ClusterOptions{WithoutCRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fc.Stop() })
	c := &cluster{env: fc.Env, cfg: fc.Config, dir: t.TempDir()}
	if c.clientset, err = kubernetes.NewForConfig(fc.Config); err != nil {
		t.Fatal(err)
	}
	c.adminKubeconfig = filepath.Join(c.dir, "admin.kubeconfig")
	if err := controlplane.WriteAdminKubeconfig(fc.Env, "e2e-admin", c.adminKubeconfig); err != nil {
		t.Fatal(err)
	}
	return c
}

// kubectl runs the real kubectl as the cluster admin.
func (c *cluster) kubectl(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", c.adminKubeconfig}, args...)...)
	cmd.Dir = framework.RepoRoot()
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
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
	_, _ = c.clientset.CoreV1().ServiceAccounts(e2eNamespace).Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	return strings.TrimSpace(c.kubectl(t, nil, "create", "token", name, "-n", e2eNamespace, "--audience", "credits.gitread.dev"))
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

// tokenKubeconfig writes a kubeconfig whose only credential is token.
func (c *cluster) tokenKubeconfig(t *testing.T, token string) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: c.cfg.Host, CertificateAuthorityData: c.cfg.CAData}
	kc.AuthInfos["operator"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "operator"}
	kc.CurrentContext = "e2e"
	path := filepath.Join(c.dir, "operator.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// buildManager builds the manager into a temporary binary.
func buildManager(t *testing.T) string {
	t.Helper()
	bin, err := framework.BuildManager(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := framework.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// startOperator runs the manager binary until the test ends and waits for it to be ready.
func startOperator(t *testing.T, bin string, args []string, env []string, healthAddr string) *framework.Process {
	t.Helper()
	p, err := framework.StartProcess(bin, args, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.Cmd.ProcessState == nil {
			_ = p.Cmd.Process.Kill()
			_ = p.Cmd.Wait()
		}
		if t.Failed() {
			t.Logf("operator output:\n%s", p.Logs())
		}
	})
	if err := p.WaitReady("http://"+healthAddr+"/readyz", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return p
}

func httpDo(t *testing.T, method, url, token, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// insecureTLS trusts the metrics server's self-signed certificate; the test checks
// authentication and authorization, not the certificate.
func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} } //nolint:gosec // loopback test only

// stopGracefully sends SIGTERM, as the kubelet does, and checks the operator exits cleanly
// and releases its leader Lease, so that another replica takes over at once.
func stopGracefully(t *testing.T, c *cluster, op *framework.Process) {
	t.Helper()
	if err := op.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- op.Cmd.Wait() }()
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
