package e2e

// What an admin installs, as kubectl kustomize renders it: the static half of TestInstallBundle.
// Each check reads the rendered objects, never the source files, so that a kustomize patch or
// transformer that changes a name, label or port is seen the way a cluster would see it.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/gitread/usercredits-operator/test/framework"
)

// bundleNamespace is the namespace config/default installs into.
const bundleNamespace = "usercredits-system"

// renderedBundle is the output of `kubectl kustomize` split into its objects.
type renderedBundle struct {
	source string // what was rendered, for messages
	text   string
	docs   []renderedDoc
}

type renderedDoc struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	raw []byte
}

// renderBundle runs `kubectl kustomize dir` (dir relative to the repository root or absolute);
// it needs no cluster.
func renderBundle(t *testing.T, dir string) renderedBundle {
	t.Helper()
	cmd := exec.Command("kubectl", "kustomize", dir)
	cmd.Dir = framework.RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr)
	}
	b := renderedBundle{source: dir, text: string(out)}
	for _, part := range regexp.MustCompile(`(?m)^---$`).Split(string(out), -1) {
		if strings.TrimSpace(part) == "" {
			continue
		}
		d := renderedDoc{raw: []byte(part)}
		if err := yaml.Unmarshal(d.raw, &d); err != nil {
			t.Fatalf("%s: %v\n%s", dir, err, part)
		}
		b.docs = append(b.docs, d)
	}
	return b
}

// without returns the rendered text less the objects of kind.
func (b renderedBundle) without(kind string) []byte {
	var parts []string
	for _, d := range b.docs {
		if d.Kind != kind {
			parts = append(parts, strings.TrimSpace(string(d.raw)))
		}
	}
	return []byte(strings.Join(parts, "\n---\n") + "\n")
}

// objectsOf decodes every rendered object of kind, strictly: a field the type does not know is
// a typo the apiserver would reject (or, worse, drop).
func objectsOf[T any](t *testing.T, b renderedBundle, kind string) []T {
	t.Helper()
	var out []T
	for _, d := range b.docs {
		if d.Kind != kind {
			continue
		}
		var obj T
		if err := yaml.UnmarshalStrict(d.raw, &obj); err != nil {
			t.Fatalf("%s: %s %s: %v", b.source, kind, d.Metadata.Name, err)
		}
		out = append(out, obj)
	}
	return out
}

// managerContainer is the rendered Deployment's manager container and its pod labels.
func managerContainer(t *testing.T, b renderedBundle) (corev1.Container, map[string]string) {
	t.Helper()
	deps := objectsOf[appsv1.Deployment](t, b, "Deployment")
	if len(deps) != 1 {
		t.Fatalf("%s renders %d Deployments, want 1", b.source, len(deps))
	}
	for _, c := range deps[0].Spec.Template.Spec.Containers {
		if c.Name == "manager" {
			return c, deps[0].Spec.Template.Labels
		}
	}
	t.Fatalf("%s: no manager container", b.source)
	return corev1.Container{}, nil
}

// containerPort resolves a port given by name or number against the manager container.
func containerPort(c corev1.Container, port intstr.IntOrString) (int32, bool) {
	for _, p := range c.Ports {
		if (port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

// checkManagerIngress asserts which namespaces may reach which manager port, over every
// NetworkPolicy that selects the manager pods: the API port (8080) from apiFrom, metrics (8443)
// from metricsFrom, and nothing else. "*" stands for every namespace.
func checkManagerIngress(t *testing.T, b renderedBundle, apiFrom, metricsFrom []string) {
	t.Helper()
	manager, podLabels := managerContainer(t, b)
	for _, flag := range []string{"--api-bind-address=:8080", "--metrics-bind-address=:8443", "--health-probe-bind-address=:8081"} {
		if !slices.Contains(manager.Args, flag) {
			t.Errorf("%s: the manager is not started with %s; the ports below assume it", b.source, flag)
		}
	}
	allowed := map[int32][]string{} // container port → peers
	selecting := 0
	for _, np := range objectsOf[networkingv1.NetworkPolicy](t, b, "NetworkPolicy") {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			t.Fatalf("%s: NetworkPolicy %s: %v", b.source, np.Name, err)
		}
		if !sel.Matches(labels.Set(podLabels)) {
			continue
		}
		selecting++
		if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
			t.Errorf("%s: NetworkPolicy %s has policyTypes %v, want [Ingress] (egress is left open on purpose)", b.source, np.Name, np.Spec.PolicyTypes)
		}
		for _, rule := range np.Spec.Ingress {
			if len(rule.Ports) == 0 {
				t.Errorf("%s: NetworkPolicy %s has a rule without ports: it opens every port", b.source, np.Name)
			}
			peers := describePeers(rule.From)
			for _, p := range rule.Ports {
				if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
					t.Errorf("%s: NetworkPolicy %s opens %s", b.source, np.Name, *p.Protocol)
				}
				if p.Port == nil {
					t.Errorf("%s: NetworkPolicy %s has a rule for every port", b.source, np.Name)
					continue
				}
				number, ok := containerPort(manager, *p.Port)
				if !ok {
					t.Errorf("%s: NetworkPolicy %s names port %s, which the manager container does not have", b.source, np.Name, p.Port.String())
					continue
				}
				allowed[number] = append(allowed[number], peers...)
			}
		}
	}
	if selecting == 0 {
		t.Fatalf("%s: no NetworkPolicy selects the manager pods %v", b.source, podLabels)
	}
	want := map[int32][]string{8080: slices.Sorted(slices.Values(apiFrom)), 8443: slices.Sorted(slices.Values(metricsFrom))}
	for port := range allowed {
		sort.Strings(allowed[port])
	}
	if fmt.Sprint(allowed) != fmt.Sprint(want) {
		t.Errorf("%s: the manager pods admit %v (port → namespaces), want %v; the health port 8081 needs no rule", b.source, allowed, want)
	}
}

// describePeers names each peer by the namespaces it admits; anything but a plain namespace
// selector on kubernetes.io/metadata.name is spelled out so that it fails the comparison.
func describePeers(peers []networkingv1.NetworkPolicyPeer) []string {
	if len(peers) == 0 {
		return []string{"any source"}
	}
	var out []string
	for _, p := range peers {
		switch {
		case p.IPBlock != nil || p.PodSelector != nil || p.NamespaceSelector == nil:
			out = append(out, fmt.Sprintf("%+v", p))
		case len(p.NamespaceSelector.MatchLabels) == 0 && len(p.NamespaceSelector.MatchExpressions) == 0:
			out = append(out, "*")
		case len(p.NamespaceSelector.MatchLabels) == 1 && p.NamespaceSelector.MatchLabels[corev1.LabelMetadataName] != "":
			out = append(out, p.NamespaceSelector.MatchLabels[corev1.LabelMetadataName])
		default:
			out = append(out, p.NamespaceSelector.String())
		}
	}
	return out
}

// serviceMonitor is the part of monitoring.coreos.com/v1 ServiceMonitor the checks read (the
// project does not depend on the Prometheus Operator's types).
type serviceMonitor struct {
	Metadata metav1.ObjectMeta `json:"metadata"`
	Spec     struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector map[string]any       `json:"namespaceSelector"`
		Endpoints         []struct {
			Port            string `json:"port"`
			Scheme          string `json:"scheme"`
			Path            string `json:"path"`
			BearerTokenFile string `json:"bearerTokenFile"`
			TLSConfig       struct {
				InsecureSkipVerify bool `json:"insecureSkipVerify"`
			} `json:"tlsConfig"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// checkServiceMonitor: the ServiceMonitor selects exactly the metrics Service of each install
// bundle, and scrapes its port that leads to the manager's 8443 over HTTPS with Prometheus'
// ServiceAccount token.
func checkServiceMonitor(t *testing.T, prom renderedBundle, installs ...renderedBundle) {
	t.Helper()
	var monitors []serviceMonitor
	for _, d := range prom.docs {
		if d.Kind == "ServiceMonitor" {
			var sm serviceMonitor
			if err := yaml.Unmarshal(d.raw, &sm); err != nil {
				t.Fatal(err)
			}
			monitors = append(monitors, sm)
		}
	}
	if len(monitors) != 1 {
		t.Fatalf("%s renders %d ServiceMonitors, want 1", prom.source, len(monitors))
	}
	sm := monitors[0]
	if sm.Metadata.Namespace != bundleNamespace || sm.Spec.NamespaceSelector != nil {
		t.Errorf("the ServiceMonitor is in %q with namespaceSelector %v: it must look in %s", sm.Metadata.Namespace, sm.Spec.NamespaceSelector, bundleNamespace)
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("the ServiceMonitor has %d endpoints, want 1", len(sm.Spec.Endpoints))
	}
	ep := sm.Spec.Endpoints[0]
	if ep.Scheme != "https" || ep.Path != "/metrics" || ep.BearerTokenFile != "/var/run/secrets/kubernetes.io/serviceaccount/token" || !ep.TLSConfig.InsecureSkipVerify {
		t.Errorf("ServiceMonitor endpoint %+v: want https, /metrics, Prometheus' ServiceAccount token, insecureSkipVerify (self-signed)", ep)
	}
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil || sel.Empty() {
		t.Fatalf("ServiceMonitor selector %v: %v", sm.Spec.Selector, err)
	}
	for _, install := range installs {
		manager, _ := managerContainer(t, install)
		var matched []string
		for _, svc := range objectsOf[corev1.Service](t, install, "Service") {
			if svc.Namespace != sm.Metadata.Namespace || !sel.Matches(labels.Set(svc.Labels)) {
				continue
			}
			matched = append(matched, svc.Name)
			i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port })
			if i < 0 {
				t.Errorf("%s: Service %s has no port named %q", install.source, svc.Name, ep.Port)
				continue
			}
			if n, ok := containerPort(manager, svc.Spec.Ports[i].TargetPort); !ok || n != 8443 {
				t.Errorf("%s: Service %s port %q leads to container port %d, want the metrics port 8443", install.source, svc.Name, ep.Port, n)
			}
		}
		if !slices.Equal(matched, []string{"usercredits-metrics"}) {
			t.Errorf("%s: the ServiceMonitor selects Services %v, want exactly [usercredits-metrics]", install.source, matched)
		}
	}
}

// prometheusSubjects returns the subjects of config/prometheus's bindings, by binding kind.
func prometheusSubjects(t *testing.T, prom renderedBundle) map[string][]rbacv1.Subject {
	t.Helper()
	out := map[string][]rbacv1.Subject{}
	for _, b := range objectsOf[rbacv1.ClusterRoleBinding](t, prom, "ClusterRoleBinding") {
		if b.RoleRef.Name != "usercredits-metrics-reader" {
			t.Errorf("ClusterRoleBinding %s binds %s, want usercredits-metrics-reader", b.Name, b.RoleRef.Name)
		}
		out["ClusterRoleBinding"] = append(out["ClusterRoleBinding"], b.Subjects...)
	}
	for _, b := range objectsOf[rbacv1.RoleBinding](t, prom, "RoleBinding") {
		out["RoleBinding"] = append(out["RoleBinding"], b.Subjects...)
	}
	return out
}

// checkManagerRoleNames: the manager's namespaced Role and its ClusterRole have distinct names,
// and each of its bindings refers to an object of the bundle.
func checkManagerRoleNames(t *testing.T, b renderedBundle) (role, clusterRole string) {
	t.Helper()
	roles := map[string]bool{}
	for _, r := range objectsOf[rbacv1.Role](t, b, "Role") {
		roles[r.Name] = true
	}
	clusterRoles := map[string]bool{}
	for _, r := range objectsOf[rbacv1.ClusterRole](t, b, "ClusterRole") {
		clusterRoles[r.Name] = true
	}
	isManager := func(subjects []rbacv1.Subject) bool {
		return slices.ContainsFunc(subjects, func(s rbacv1.Subject) bool {
			return s.Kind == "ServiceAccount" && s.Name == "usercredits-controller-manager" && s.Namespace == bundleNamespace
		})
	}
	for _, rb := range objectsOf[rbacv1.RoleBinding](t, b, "RoleBinding") {
		if isManager(rb.Subjects) && rb.RoleRef.Kind == "Role" {
			role = rb.RoleRef.Name
			if !roles[role] {
				t.Errorf("RoleBinding %s refers to Role %s, which the bundle does not have", rb.Name, role)
			}
		}
	}
	for _, crb := range objectsOf[rbacv1.ClusterRoleBinding](t, b, "ClusterRoleBinding") {
		if isManager(crb.Subjects) {
			clusterRole = crb.RoleRef.Name
			if !clusterRoles[clusterRole] {
				t.Errorf("ClusterRoleBinding %s refers to ClusterRole %s, which the bundle does not have", crb.Name, clusterRole)
			}
		}
	}
	if role == "" || clusterRole == "" || role == clusterRole || roles[clusterRole] || clusterRoles[role] {
		t.Errorf("the manager's Role %q and ClusterRole %q must both exist under distinct names (Roles %v, ClusterRoles %v)", role, clusterRole, roles, clusterRoles)
	}
	return role, clusterRole
}

// checkImage: the rendered Deployment runs the image `make image` tags (the Makefile's default
// IMG), and docs/install.md names that same reference.
func checkImage(t *testing.T, b renderedBundle) {
	t.Helper()
	manager, _ := managerContainer(t, b)
	// make -n prints the recipe without running it; IMG and IMAGE_TAG from the environment would
	// hide the Makefile's defaults, which are what is checked.
	cmd := exec.Command("make", "-n", "--no-print-directory", "image")
	cmd.Dir = framework.RepoRoot()
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "IMG=") || strings.HasPrefix(kv, "IMAGE_TAG=") || strings.HasPrefix(kv, "MAKEFLAGS=")
	})
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make -n image: %v", err)
	}
	m := regexp.MustCompile(`build-image .*-tag (\S+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("make -n image records no -tag:\n%s", out)
	}
	if manager.Image != m[1] {
		t.Errorf("config/default runs image %q, make image tags %q", manager.Image, m[1])
	}
	if strings.HasSuffix(manager.Image, ":latest") || !strings.Contains(manager.Image, ":") {
		t.Errorf("image %q: a latest (or missing) tag makes the kubelet always pull, so a loaded image never starts", manager.Image)
	}
	install, err := os.ReadFile(filepath.Join(framework.RepoRoot(), "docs", "install.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(install), manager.Image) {
		t.Errorf("docs/install.md never names the image %q that config/default deploys", manager.Image)
	}
}
