package e2e

// The manager binary as a process, and what the tests observe it through from outside:
// HTTP, its secured metrics endpoint, kubectl and Events.

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/test/framework"
)

// manager is one run of the built manager binary, on free loopback ports of its own.
type manager struct {
	*framework.Process
	apiAddr, healthAddr, metricsAddr string
}

// newManager picks the addresses of a manager that is not started yet.
func newManager(t *testing.T) *manager {
	t.Helper()
	return &manager{apiAddr: freeAddr(t), healthAddr: freeAddr(t), metricsAddr: freeAddr(t)}
}

// baseArgs are the flags every run needs: the operator's kubeconfig and the addresses.
func (m *manager) baseArgs() []string {
	return []string{"--kubeconfig=" + suite.kubeconfig, "--api-bind-address=" + m.apiAddr,
		"--health-probe-bind-address=" + m.healthAddr, "--metrics-bind-address=" + m.metricsAddr}
}

// baseEnv is the environment of every run; a later entry overrides an earlier one of the
// same name (os/exec keeps the last), so "CLERK_JWT_KEY=" unsets the key.
func baseEnv(extra ...string) []string {
	return append([]string{"HOME=" + suite.c.dir, "PATH=" + os.Getenv("PATH")}, extra...)
}

// clerkKey is CLERK_JWT_KEY for the suite's signer.
func clerkKey() string { return "CLERK_JWT_KEY=" + suite.signer.PublicKeyPEM() }

// launch starts a manager for config/default's namespace with the suite's Clerk key, flags
// and env added, and stops it when the test ends. Flags repeated in flags win (the flag
// package keeps the last).
func launch(t *testing.T, flags []string, env ...string) *manager {
	t.Helper()
	m := newManager(t)
	args := append(append(m.baseArgs(), "--namespace="+e2eNamespace), flags...)
	m.start(t, args, baseEnv(append([]string{clerkKey()}, env...)...))
	return m
}

// start runs the binary with args and env until the test ends and waits for /readyz.
func (m *manager) start(t *testing.T, args, env []string) {
	t.Helper()
	m.Process = startOperator(t, suite.bin, args, env, m.healthAddr)
}

// stop kills the process, if it runs.
func (m *manager) stop() {
	if m.Running() {
		_ = m.Cmd.Process.Kill()
		_ = m.Wait()
	}
}

// url is the plain-HTTP URL of path on the API.
func (m *manager) url(path string) string { return "http://" + m.apiAddr + path }

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
		if p.Running() {
			_ = p.Cmd.Process.Kill()
			_ = p.Wait()
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

// userToken is a Clerk session token for user, signed by the suite's Clerk key.
func userToken(t *testing.T, user string) string {
	t.Helper()
	token, err := suite.signer.SessionToken(user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// sessionToken is a Clerk session token for user with extra claims (azp).
func sessionToken(t *testing.T, user string, extra map[string]any) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{"iss": auth.DevIssuer, "sub": user, "iat": now.Unix(), "nbf": now.Add(-5 * time.Second).Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range extra {
		claims[k] = v
	}
	token, err := suite.signer.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func httpDo(t *testing.T, method, url, token, body string, header ...string) (int, string) {
	t.Helper()
	resp, data := httpResponse(t, http.DefaultTransport, method, url, token, body, header...)
	if resp == nil {
		return 0, data
	}
	return resp.StatusCode, data
}

// httpResponse sends a request through transport and returns the response (nil when the
// request failed, with the error as the body) and its body.
func httpResponse(t *testing.T, transport http.RoundTripper, method, url, token, body string, header ...string) (*http.Response, string) {
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
	resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: transport}).Do(req)
	if err != nil {
		return nil, err.Error()
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}

// insecureTLS trusts the metrics server's self-signed certificate; the tests check
// authentication and authorization, not the certificate.
func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} } //nolint:gosec // loopback test only

// metricsReaderToken is a token of ServiceAccount prometheus, bound to the shipped
// usercredits-metrics-reader ClusterRole as a Prometheus install would bind it.
func (c *cluster) metricsReaderToken(t *testing.T) string {
	t.Helper()
	_, err := c.clientset.RbacV1().ClusterRoleBindings().Create(context.Background(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus-metrics-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "usercredits-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "prometheus", Namespace: e2eNamespace}},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return c.token(t, e2eNamespace, "prometheus")
}

// scrape GETs the secured metrics endpoint at addr with token ("" for none).
func scrape(addr, token string) (int, string) {
	req, _ := http.NewRequest("GET", "https://"+addr+"/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: insecureTLS()}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// metricValue is the value of the unlabelled sample name in a Prometheus text exposition.
func metricValue(exposition, name string) (float64, error) {
	for _, line := range strings.Split(exposition, "\n") {
		if value, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(value), 64)
		}
	}
	return 0, fmt.Errorf("no sample %s", name)
}

// objectName is the name of user's UserCredits object in namespace, read with kubectl
// ("" while there is none).
func objectName(t *testing.T, namespace, user string) string {
	t.Helper()
	return strings.TrimSpace(suite.c.kubectl(t, nil, "get", "uc", "-n", namespace,
		"-o", `jsonpath={.items[?(@.spec.userID=="`+user+`")].metadata.name}`))
}

// eventsAbout are the Events about object name in namespace, as kubectl get events shows them.
func eventsAbout(t *testing.T, namespace, name string) []corev1.Event {
	t.Helper()
	list, err := suite.c.clientset.CoreV1().Events(namespace).List(context.Background(),
		metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// hasEvent reports whether evs hold an Event of type and reason.
func hasEvent(evs []corev1.Event, eventType, reason string) bool {
	for _, e := range evs {
		if e.Type == eventType && e.Reason == reason {
			return true
		}
	}
	return false
}
