package main

// End to end: the built manager binary, run as a subprocess with only the RBAC that
// config/ ships (its ServiceAccount's token is its only credential), against a real
// kube-apiserver and etcd, driven through real HTTP and the real kubectl.

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/devcluster"
	"github.com/gitread/usercredits-operator/internal/testenv"
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
	env, err := testenv.New()
	if err != nil {
		t.Fatal(err)
	}
	env.CRDDirectoryPaths = nil // the test installs the CRD from config/, as a user would
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c := &cluster{env: env, cfg: cfg, dir: t.TempDir()}
	if c.clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	c.adminKubeconfig = filepath.Join(c.dir, "admin.kubeconfig")
	if err := devcluster.WriteAdminKubeconfig(env, "e2e-admin", c.adminKubeconfig); err != nil {
		t.Fatal(err)
	}
	return c
}

// kubectl runs the real kubectl as the cluster admin.
func (c *cluster) kubectl(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", c.adminKubeconfig}, args...)...)
	cmd.Dir = testenv.RepoRoot()
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
	ctx := context.Background()
	_, _ = c.clientset.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	tr, err := c.clientset.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptrInt64(3600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest %s/%s: %v", namespace, name, err)
	}
	return tr.Status.Token
}

func ptrInt64(v int64) *int64 { return &v }

// bind binds clusterRole to ServiceAccount name in the operator's namespace.
func (c *cluster) bind(t *testing.T, name, clusterRole string) {
	t.Helper()
	_, err := c.clientset.RbacV1().RoleBindings(e2eNamespace).Create(context.Background(), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-" + clusterRole},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: clusterRole},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: e2eNamespace}},
	}, metav1.CreateOptions{})
	if err != nil {
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

// buildManager builds this command into a temporary binary.
func buildManager(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "manager")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// operatorProcess is the manager binary running as a subprocess.
type operatorProcess struct {
	cmd  *exec.Cmd
	logs *syncBuffer
}

// syncBuffer collects a process's output safely while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func startOperator(t *testing.T, bin string, args []string, env []string, healthAddr string) *operatorProcess {
	t.Helper()
	p := &operatorProcess{cmd: exec.Command(bin, args...), logs: &syncBuffer{}}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("operator output:\n%s", p.logs.String())
		}
	})
	testenv.Eventually(t, 30*time.Second, func() error {
		resp, err := http.Get("http://" + healthAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
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

func TestEndToEnd(t *testing.T) {
	c := startCluster(t)

	// config/default is what a platform team applies: the server must accept all of it,
	// first as a dry run (namespaced objects need their namespace to exist for that), then
	// for real, then again as a GitOps resync would.
	manifests := []byte(c.kubectl(t, nil, "kustomize", "config/default"))
	c.kubectl(t, nil, "create", "namespace", e2eNamespace)
	c.kubectl(t, manifests, "apply", "--server-side", "--dry-run=server", "-f", "-")
	c.kubectl(t, manifests, "apply", "--server-side", "-f", "-")
	c.kubectl(t, manifests, "apply", "--server-side", "--dry-run=server", "-f", "-")
	c.kubectl(t, nil, "wait", "--for=condition=Established", "crd/usercredits.credits.gitread.dev", "--timeout=30s")

	// The operator's only credential: its ServiceAccount's token, bound by config/rbac.
	kubeconfig := c.tokenKubeconfig(t, c.token(t, e2eNamespace, "usercredits-controller-manager"))
	signer, err := auth.NewSigner("ins_e2e")
	if err != nil {
		t.Fatal(err)
	}
	bin := buildManager(t)
	apiAddr, healthAddr, metricsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	args := []string{"--kubeconfig=" + kubeconfig, "--namespace=" + e2eNamespace, "--leader-elect", "--allow-user-writes",
		"--api-bind-address=" + apiAddr, "--health-probe-bind-address=" + healthAddr, "--metrics-bind-address=" + metricsAddr}
	env := []string{"HOME=" + c.dir, "PATH=" + os.Getenv("PATH"), "CLERK_JWT_KEY=" + signer.PublicKeyPEM()}
	op := startOperator(t, bin, args, env, healthAddr)

	api := "http://" + apiAddr + "/api/credits"
	user := "user_E2E1"
	userToken, err := signer.SessionToken(user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expectHTTP(t, "clerk GET", 200, `{"credits":0}`)(httpDo(t, "GET", api, userToken, ""))
	expectHTTP(t, "clerk POST", 200, `{"success":true,"credits":20}`)(httpDo(t, "POST", api, userToken, `{"credits":20}`))
	expectHTTP(t, "clerk GET after POST", 200, `{"credits":20}`)(httpDo(t, "GET", api, userToken, ""))

	c.bind(t, "readme-generator", "credits-consumer")
	worker := c.token(t, e2eNamespace, "readme-generator")
	expectHTTP(t, "consumer consumes", 200, `{"success":true,"credits":19}`)(httpDo(t, "POST", api+"/consume?userId="+user, worker, ""))
	expectHTTP(t, "consumer grants", 403, `{"error":"Forbidden"}`)(httpDo(t, "POST", api+"/grant?userId="+user, worker, `{"credits":5}`, "Idempotency-Key", "x"))

	// The controller, with only the shipped RBAC, validated the object; kubectl shows it.
	testenv.Eventually(t, 20*time.Second, func() error {
		out := c.kubectl(t, nil, "get", "uc", "-n", e2eNamespace)
		header := strings.Fields(strings.SplitN(out, "\n", 2)[0])
		if strings.Join(header, " ") != "NAME USER CREDITS VALID UPDATED AGE" {
			return fmt.Errorf("printer columns: %v", header)
		}
		row := strings.Fields(testenv.LineContaining(out, user))
		if len(row) < 6 || row[2] != "19" || row[3] != "True" {
			return fmt.Errorf("row for %s: %v\n%s", user, row, out)
		}
		return nil
	})

	checkSecuredMetrics(t, c, metricsAddr)
	stopGracefully(t, c, op)
	logs := op.logs.String()

	op = startOperator(t, bin, args, env, healthAddr)
	op = crashAndRestart(t, c, op, bin, args, env, healthAddr, api, user)
	logs += op.logs.String()
	for name, token := range map[string]string{"Clerk": userToken, "ServiceAccount": worker} {
		signature := token[strings.LastIndexByte(token, '.')+1:]
		if strings.Contains(logs, signature) {
			t.Errorf("the operator logged a %s token", name)
		}
	}
}

func expectHTTP(t *testing.T, name string, status int, body string) func(int, string) {
	return func(gotStatus int, gotBody string) {
		t.Helper()
		if gotStatus != status || gotBody != body {
			t.Errorf("%s: got %d %s, want %d %s", name, gotStatus, gotBody, status, body)
		}
	}
}

// checkSecuredMetrics: anonymous scrapes are refused; a ServiceAccount bound to the shipped
// metrics-reader ClusterRole gets the operator's own metrics.
func checkSecuredMetrics(t *testing.T, c *cluster, addr string) {
	t.Helper()
	_, err := c.clientset.RbacV1().ClusterRoleBindings().Create(context.Background(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus-metrics-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "usercredits-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "prometheus", Namespace: e2eNamespace}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scraper := c.token(t, e2eNamespace, "prometheus")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: insecureTLS()}}
	scrape := func(token string) (int, string) {
		req, _ := http.NewRequest("GET", "https://"+addr+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	if status, _ := scrape(""); status != http.StatusUnauthorized {
		t.Errorf("anonymous scrape: %d, want 401", status)
	}
	status, body := scrape(scraper)
	if status != 200 || !strings.Contains(body, "usercredits_api_requests_total") || !strings.Contains(body, "usercredits_operations_total") {
		t.Errorf("scrape with metrics-reader: %d, own metrics present: %v", status, strings.Contains(body, "usercredits_"))
	}
}

// crashAndRestart grants credits one by one with idempotency keys, SIGKILLs the operator
// in the middle, starts it again, and checks that every acknowledged grant survived; then
// it replays every key and checks the balance is exactly the sum of unique grants.
func crashAndRestart(t *testing.T, c *cluster, op *operatorProcess, bin string, args, env []string, healthAddr, api, user string) *operatorProcess {
	t.Helper()
	c.bind(t, "checkout", "credits-granter")
	granter := c.token(t, e2eNamespace, "checkout")
	grantURL := api + "/grant?userId=" + user
	const before = 19

	var acked, attempted int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 500; i++ {
			attempted = i + 1
			status, _ := httpDo(t, "POST", grantURL, granter, `{"credits":1}`, "Idempotency-Key", fmt.Sprint("crash-", i))
			if status != 200 {
				return // the operator is gone
			}
			acked++
		}
	}()
	time.Sleep(500 * time.Millisecond)
	if err := op.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = op.cmd.Wait()
	<-done
	if acked == 0 || acked == 500 {
		t.Fatalf("the kill did not land mid-run: %d of %d grants acknowledged", acked, attempted)
	}
	t.Logf("killed the operator after %d acknowledged grants (%d attempted)", acked, attempted)

	op = startOperator(t, bin, args, env, healthAddr)
	status, body := httpDo(t, "GET", api+"?userId="+user, granter, "")
	var balance int
	if _, err := fmt.Sscanf(body, `{"credits":%d}`, &balance); err != nil || status != 200 {
		// The granter may only grant; read as the admin would.
		balance = readBalance(t, c, user)
	}
	if balance < before+acked || balance > before+attempted {
		t.Fatalf("after restart the balance is %d: acknowledged grants lost (want %d..%d)", balance, before+acked, before+attempted)
	}
	for i := range attempted {
		status, _ := httpDo(t, "POST", grantURL, granter, `{"credits":1}`, "Idempotency-Key", fmt.Sprint("crash-", i))
		if status != 200 {
			t.Fatalf("replaying grant %d: %d", i, status)
		}
	}
	if got := readBalance(t, c, user); got != before+attempted {
		t.Fatalf("after replaying every key the balance is %d, want exactly %d", got, before+attempted)
	}
	return op
}

// readBalance reads spec.credits with kubectl, as an operator of the cluster would.
func readBalance(t *testing.T, c *cluster, user string) int {
	t.Helper()
	out := c.kubectl(t, nil, "get", "uc", "-n", e2eNamespace, "-o", "jsonpath={.items[?(@.spec.userID==\""+user+"\")].spec.credits}")
	var n int
	if _, err := fmt.Sscan(out, &n); err != nil {
		t.Fatalf("reading %s's balance: %q", user, out)
	}
	return n
}

// insecureTLS trusts the metrics server's self-signed certificate; the test checks
// authentication and authorization, not the certificate.
func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} } //nolint:gosec // loopback test only

// stopGracefully sends SIGTERM, as the kubelet does, and checks the operator exits cleanly
// and releases its leader Lease, so that another replica takes over at once.
func stopGracefully(t *testing.T, c *cluster, op *operatorProcess) {
	t.Helper()
	if err := op.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- op.cmd.Wait() }()
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
