package e2e

// The install bundle an admin expects beside the operator itself (issue 18): NetworkPolicies,
// the ServiceMonitor add-on and Prometheus' RBAC, read access through the built-in view role,
// distinct names for the manager's Role and ClusterRole, and the image reference. TestEndToEnd
// runs the built manager with the same config/default; this test checks the rest, rendered by
// kubectl kustomize and applied to a real kube-apiserver.

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/gitread/usercredits-operator/internal/controlplane"
	"github.com/gitread/usercredits-operator/internal/operator"
	"github.com/gitread/usercredits-operator/test/framework"
)

// TestInstallBundle checks each part of the bundle rendered, then applied to a real apiserver.
func TestInstallBundle(t *testing.T) {
	def := renderBundle(t, "config/default")
	certManager := renderBundle(t, "config/cert-manager")
	prom := renderBundle(t, "config/prometheus")

	t.Run("NetworkPolicy", func(t *testing.T) {
		checkManagerIngress(t, def, []string{"*"}, []string{"monitoring"})
		checkManagerIngress(t, certManager, []string{"*"}, []string{"monitoring"})
		// The overlay docs/install.md shows: the API from the ingress controller's namespace and a
		// caller's, metrics from another monitoring namespace, with one patch per policy.
		overlay := renderDocumentedOverlay(t, "docs/install.md", "usercredits-allow-api")
		checkManagerIngress(t, overlay, []string{"ingress-nginx", "apps"}, []string{"observability"})
	})
	t.Run("ServiceMonitor", func(t *testing.T) {
		// Under config/cert-manager the API's Service port is named https too: the selector,
		// not the port name, must keep the ServiceMonitor off it.
		checkServiceMonitor(t, prom, def, certManager)
		// Prometheus' bindings name an account in the namespace the metrics NetworkPolicy admits.
		want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "prometheus-k8s", Namespace: "monitoring"}}
		documented := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "kube-prometheus-stack-prometheus", Namespace: "observability"}}
		for _, tc := range []struct {
			bundle renderedBundle
			want   []rbacv1.Subject
		}{{prom, want}, {renderDocumentedOverlay(t, "docs/metrics.md", "prometheus-access"), documented}} {
			got := prometheusSubjects(t, tc.bundle)
			for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
				if !slices.Equal(got[kind], tc.want) {
					t.Errorf("%s: %s subjects %v, want %v", tc.bundle.source, kind, got[kind], tc.want)
				}
			}
		}
	})
	t.Run("Image", func(t *testing.T) { checkImage(t, def) })
	var role, clusterRole string
	t.Run("ManagerRoleNames", func(t *testing.T) { role, clusterRole = checkManagerRoleNames(t, def) })

	c := startBundleCluster(t)
	ctx := context.Background()
	c.kubectl(t, nil, "create", "namespace", bundleNamespace)
	// The RoleBinding an install from before the Role rename has, applied the same way: its
	// roleRef cannot change, so the bundle must bind the renamed Role under another name for
	// the apply below to succeed.
	c.kubectl(t, []byte(previousManagerRoleBinding), "apply", "--server-side", "-f", "-")
	c.kubectl(t, []byte(def.text), "apply", "--server-side", "--dry-run=server", "-f", "-")
	c.kubectl(t, []byte(def.text), "apply", "--server-side", "-f", "-")
	c.kubectl(t, nil, "wait", "--for=condition=Established", "crd/usercredits.credits.gitread.dev", "--timeout=30s")

	t.Run("AcceptedByTheAPIServer", func(t *testing.T) {
		for _, name := range []string{"usercredits-allow-api", "usercredits-allow-metrics"} {
			if _, err := c.clientset.NetworkingV1().NetworkPolicies(bundleNamespace).Get(ctx, name, metav1.GetOptions{}); err != nil {
				t.Errorf("NetworkPolicy %s: %v", name, err)
			}
		}
		overlay := renderDocumentedOverlay(t, "docs/install.md", "usercredits-allow-api")
		c.kubectl(t, []byte(overlay.text), "apply", "--server-side", "--dry-run=server", "-f", "-")
		if _, err := c.clientset.RbacV1().Roles(bundleNamespace).Get(ctx, role, metav1.GetOptions{}); err != nil {
			t.Errorf("the manager's Role: %v", err)
		}
		if _, err := c.clientset.RbacV1().ClusterRoles().Get(ctx, clusterRole, metav1.GetOptions{}); err != nil {
			t.Errorf("the manager's ClusterRole: %v", err)
		}
	})
	t.Run("ViewRole", func(t *testing.T) { checkViewRole(t, c, def) })
	t.Run("PrometheusRBAC", func(t *testing.T) {
		// The ServiceMonitor needs the monitoring.coreos.com CRDs, which this control plane does
		// not have; the RBAC beside it is applied and evaluated.
		c.kubectl(t, prom.without("ServiceMonitor"), "apply", "--server-side", "-f", "-")
		prometheus := "system:serviceaccount:monitoring:prometheus-k8s"
		for _, can := range [][]string{{"get", "/metrics"}, {"list", "endpointslices.discovery.k8s.io", "-n", bundleNamespace},
			{"watch", "services", "-n", bundleNamespace}, {"list", "pods", "-n", bundleNamespace}} {
			if !c.canI(t, prometheus, can...) {
				t.Errorf("Prometheus may not %v", can)
			}
		}
		if c.canI(t, "system:serviceaccount:monitoring:someone-else", "get", "/metrics") {
			t.Error("an account config/prometheus does not name may get /metrics")
		}
	})
}

// previousManagerRoleBinding is the RoleBinding config/rbac shipped before the manager's Role
// was renamed.
const previousManagerRoleBinding = `
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: usercredits-manager-rolebinding
  namespace: ` + bundleNamespace + `
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: usercredits-manager-role
subjects:
- kind: ServiceAccount
  name: usercredits-controller-manager
  namespace: ` + bundleNamespace + `
`

// checkViewRole: a user holding only usercredits-view may read UserCredits and nothing more,
// and the real apiserver's built-in roles would aggregate it into view, and into nothing that
// grants writes.
func checkViewRole(t *testing.T, c bundleCluster, def renderedBundle) {
	ctx := context.Background()
	// envtest runs no kube-controller-manager, so the aggregation into `view` never happens
	// here: the selectors of the apiserver's own view/edit/admin roles are compared with the
	// labels, and the user is bound to usercredits-view directly.
	selectors := map[string][]labels.Selector{}
	for _, name := range []string{"view", "edit", "admin"} {
		cr, err := c.clientset.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{})
		if err != nil || cr.AggregationRule == nil {
			t.Fatalf("the apiserver's %s ClusterRole: %v (aggregation %v)", name, err, cr.AggregationRule)
		}
		for _, s := range cr.AggregationRule.ClusterRoleSelectors {
			sel, err := metav1.LabelSelectorAsSelector(&s)
			if err != nil {
				t.Fatal(err)
			}
			selectors[name] = append(selectors[name], sel)
		}
	}
	aggregatedInto := func(cr rbacv1.ClusterRole, role string) bool {
		return slices.ContainsFunc(selectors[role], func(s labels.Selector) bool { return s.Matches(labels.Set(cr.Labels)) })
	}
	viewers := 0
	for _, cr := range objectsOf[rbacv1.ClusterRole](t, def, "ClusterRole") {
		if aggregatedInto(cr, "edit") || aggregatedInto(cr, "admin") {
			t.Errorf("ClusterRole %s is aggregated into edit or admin: writing balances must take an explicit binding", cr.Name)
		}
		if !aggregatedInto(cr, "view") {
			continue
		}
		viewers++
		for _, rule := range cr.Rules {
			for _, verb := range rule.Verbs {
				if !slices.Contains([]string{"get", "list", "watch"}, verb) {
					t.Errorf("ClusterRole %s, aggregated into view, grants %q", cr.Name, verb)
				}
			}
		}
	}
	if viewers != 1 {
		t.Errorf("%d ClusterRoles are aggregated into view, want 1 (usercredits-view)", viewers)
	}

	const viewer = "viewer@example.com"
	c.kubectl(t, nil, "-n", bundleNamespace, "create", "rolebinding", "viewer", "--clusterrole=usercredits-view", "--user="+viewer)
	c.kubectl(t, nil, "-n", bundleNamespace, "apply", "--server-side", "-f", "config/samples/credits_v1alpha1_usercredits_alice.yaml")
	if out := c.kubectl(t, nil, "-n", bundleNamespace, "get", "uc", "-o", "name", "--as", viewer); !strings.Contains(out, "usercredits.credits.gitread.dev/alice") {
		t.Errorf("the viewer's kubectl get uc: %q", out)
	}
	if out := c.kubectl(t, nil, "-n", bundleNamespace, "get", "uc", "alice", "-o", "jsonpath={.spec.credits}", "--as", viewer); out != "25" {
		t.Errorf("the viewer reads alice's balance as %q, want 25", out)
	}
	for _, verb := range []string{"get", "list", "watch"} {
		if !c.canI(t, viewer, verb, "usercredits.credits.gitread.dev", "-n", bundleNamespace) {
			t.Errorf("the viewer may not %s usercredits", verb)
		}
	}
	for _, verb := range []string{"create", "update", "patch", "delete", "consume", "grant"} {
		if c.canI(t, viewer, verb, "usercredits.credits.gitread.dev", "-n", bundleNamespace) {
			t.Errorf("the viewer may %s usercredits", verb)
		}
	}
	if c.canI(t, viewer, "list", "usercredits.credits.gitread.dev", "-n", "default") {
		t.Error("the viewer may list usercredits outside the namespace it is bound in")
	}
	// A real write, not only the review: refused, and the balance is unchanged.
	out, err := c.run(nil, "-n", bundleNamespace, "patch", "uc", "alice", "--type=merge", "-p", `{"spec":{"credits":1000}}`, "--as", viewer)
	if err == nil || !strings.Contains(out, "forbidden") {
		t.Errorf("the viewer's patch: %v %s", err, out)
	}
	if out := c.kubectl(t, nil, "-n", bundleNamespace, "get", "uc", "alice", "-o", "jsonpath={.spec.credits}"); out != "25" {
		t.Errorf("after the viewer's patch alice has %s credits, want 25", out)
	}
}

// bundleCluster is a bare control plane (no CRDs: the bundle installs its own) and an admin
// kubeconfig for kubectl.
type bundleCluster struct {
	kubeconfig string
	clientset  *kubernetes.Clientset
}

func startBundleCluster(t *testing.T) bundleCluster {
	t.Helper()
	fc, err := framework.StartCluster(operator.NewScheme(), framework.ClusterOptions{WithoutCRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fc.Stop() })
	c := bundleCluster{kubeconfig: filepath.Join(t.TempDir(), "admin.kubeconfig")}
	if err := controlplane.WriteAdminKubeconfig(fc.Env, "bundle-admin", c.kubeconfig); err != nil {
		t.Fatal(err)
	}
	if c.clientset, err = kubernetes.NewForConfig(fc.Config); err != nil {
		t.Fatal(err)
	}
	return c
}

// run runs kubectl as the cluster admin (or whom --as names) from the repository root.
func (c bundleCluster) run(stdin []byte, args ...string) (string, error) {
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	cmd.Dir = framework.RepoRoot()
	if stdin != nil {
		cmd.Stdin = strings.NewReader(string(stdin))
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c bundleCluster) kubectl(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	out, err := c.run(stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// canI asks the apiserver (a SelfSubjectAccessReview, impersonating user) with kubectl auth
// can-i, which answers yes with status 0 and no with status 1.
func (c bundleCluster) canI(t *testing.T, user string, args ...string) bool {
	t.Helper()
	cmd := exec.Command("kubectl", append(append([]string{"--kubeconfig", c.kubeconfig, "auth", "can-i"}, args...), "--as", user)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr // warnings, e.g. that consume is not a verb kubectl knows
	out, err := cmd.Output()
	var exit *exec.ExitError
	switch answer := strings.TrimSpace(string(out)); {
	case err == nil && answer == "yes":
		return true
	case errors.As(err, &exit) && exit.ExitCode() == 1 && strings.HasPrefix(answer, "no"):
		return false
	default:
		t.Fatalf("kubectl auth can-i %v --as %s: %v %s%s", args, user, err, out, stderr.String())
		return false
	}
}

// renderDocumentedOverlay writes the first yaml block of doc (relative to the repository)
// that contains marker into a kustomization in a temporary directory, pointing its
// ../usercredits-operator/ paths at this repository, and renders it: the documented
// overlay is the one tested.
func renderDocumentedOverlay(t *testing.T, doc, marker string) renderedBundle {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(framework.RepoRoot(), doc))
	if err != nil {
		t.Fatal(err)
	}
	var block string
	for _, m := range regexp.MustCompile("(?ms)^ *```yaml\n(.*?)^ *```").FindAllStringSubmatch(string(text), -1) {
		if strings.Contains(m[1], marker) {
			block = m[1]
			break
		}
	}
	if block == "" {
		t.Fatalf("%s has no yaml block containing %q", doc, marker)
	}
	dir := t.TempDir()
	root, err := filepath.Abs(framework.RepoRoot())
	if err != nil {
		t.Fatal(err)
	}
	// kustomize refuses absolute paths to other kustomizations: use a relative one.
	rel, err := filepath.Rel(dir, root)
	if err != nil {
		t.Fatal(err)
	}
	block = strings.ReplaceAll(dedent(block), "../usercredits-operator/", filepath.ToSlash(rel)+"/")
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(block), 0o644); err != nil {
		t.Fatal(err)
	}
	b := renderBundle(t, dir)
	b.source = doc + "'s overlay"
	return b
}

// dedent removes the indentation of a code block nested in a Markdown list item.
func dedent(block string) string {
	lines := strings.Split(block, "\n")
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			if n := len(l) - len(strings.TrimLeft(l, " ")); indent < 0 || n < indent {
				indent = n
			}
		}
	}
	for i, l := range lines {
		if len(l) >= indent && indent > 0 {
			lines[i] = l[indent:]
		}
	}
	return strings.Join(lines, "\n")
}
