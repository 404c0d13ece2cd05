package operator_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/gitread/usercredits-operator/internal/controlplane"
	"github.com/gitread/usercredits-operator/internal/operator"
	"github.com/gitread/usercredits-operator/internal/operator/options"
	"github.com/gitread/usercredits-operator/test/framework"
)

// TestEverySettingReachesTheRunningOperator sets every flag and environment variable of
// the manager to a value other than its default, parses them as the binary does, starts
// the operator, and compares the configuration its parts hold (Operator.Effective, read
// back from each part) with what was set: a setting dropped anywhere on its way shows as a
// difference. The manager's own addresses are also called from outside.
func TestEverySettingReachesTheRunningOperator(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := controlplane.WriteAdminKubeconfig(env, "settings-admin", kubeconfig); err != nil {
		t.Fatal(err)
	}
	clientset, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := operator.DiscoverServiceAccountIssuer(ctx, clientset)
	if err != nil {
		t.Fatal(err)
	}
	certDir := t.TempDir()
	writeServingCert(t, certDir, 7)
	values := framework.ManagerSettings()
	live := map[string]string{ // what must be real for the operator to run
		"--namespace": testNamespace, "--kubeconfig": kubeconfig, "--api-cert-dir": certDir, "--service-account-issuer": issuer,
		"--api-bind-address": "127.0.0.1:0", "--health-probe-bind-address": freeAddr(t), "--metrics-bind-address": freeAddr(t),
		"--pprof-bind-address": freeAddr(t), "CLERK_JWT_KEY": signer.PublicKeyPEM(), "CLERK_SECRET_KEY": clerkConfig.SecretKey,
		"--clerk-api-url": clerkConfig.APIURL,
	}
	for name, value := range live {
		if _, ok := values[name]; !ok {
			t.Fatalf("%s is not a setting of the manager", name)
		}
		values[name] = value
	}
	args, environment := framework.SettingsArgs(values)
	o, _, err := options.Parse(args, func(name string) (string, bool) { v, ok := environment[name]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := o.RESTConfig()
	if err != nil || strings.TrimSuffix(cfg.Host, "/") != strings.TrimSuffix(restCfg.Host, "/") {
		t.Fatalf("--kubeconfig did not reach the connection: %v, host %q, want %q", err, cfg.Host, restCfg.Host)
	}
	if cfg.QPS >= 0 {
		t.Fatalf("--kubeconfig's connection is rate-limited client-side at %v requests a second (controller-runtime's own loader turns that off)", cfg.QPS)
	}
	op, err := operator.New(ctx, cfg, o, func(m *ctrl.Options) { m.Controller.SkipNameValidation = ptr.To(true) })
	if err != nil {
		t.Fatal(err)
	}
	wait, err := framework.RunManager(ctx, op.Manager)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = wait() }()

	want := *o
	want.Kubeconfig, want.Log = "", options.Options{}.Log // consumed before the operator is built (above; options_test.go)
	for _, diff := range differences(reflect.ValueOf(want), reflect.ValueOf(op.Effective()), "Options") {
		t.Error(diff)
	}

	// From outside: each address answers, as its settings say.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback test
	for what, url := range map[string]string{
		"API over HTTPS (--api-cert-dir)":             "https://" + op.APIAddress() + "/api/credits?userId=user_Settings",
		"health probes (--health-probe-bind-address)": "http://" + values["--health-probe-bind-address"] + "/readyz",
		"metrics over HTTP (--metrics-secure=false)":  "http://" + values["--metrics-bind-address"] + "/metrics",
		"pprof (--pprof-bind-address)":                "http://" + values["--pprof-bind-address"] + "/debug/pprof/",
	} {
		framework.Eventually(t, 10*time.Second, func() error {
			resp, err := client.Get(url)
			if err != nil {
				return fmt.Errorf("%s: %v", what, err)
			}
			resp.Body.Close()
			if what[:3] == "API" && resp.StatusCode != http.StatusUnauthorized || what[:3] != "API" && resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s answered %d", what, url, resp.StatusCode)
			}
			return nil
		})
	}
}

// TestKubeconfigFromTheEnvironment: without --kubeconfig, $KUBECONFIG names the cluster.
func TestKubeconfigFromTheEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := controlplane.WriteAdminKubeconfig(env, "settings-env-admin", path); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", path)
	cfg, err := options.New().RESTConfig()
	if err != nil || strings.TrimSuffix(cfg.Host, "/") != strings.TrimSuffix(restCfg.Host, "/") || cfg.QPS >= 0 {
		t.Fatalf("KUBECONFIG did not reach the connection: %v, host %q (want %q), QPS %v", err, cfg.Host, restCfg.Host, cfg.QPS)
	}
}

// differences lists the paths at which got differs from want.
func differences(want, got reflect.Value, path string) []string {
	if want.Kind() == reflect.Struct {
		var out []string
		for i := range want.NumField() {
			if !want.Field(i).CanInterface() {
				continue
			}
			out = append(out, differences(want.Field(i), got.Field(i), path+"."+want.Type().Field(i).Name)...)
		}
		return out
	}
	if !reflect.DeepEqual(want.Interface(), got.Interface()) {
		return []string{fmt.Sprintf("%s: the running operator holds %v, the flags said %v", path, got.Interface(), want.Interface())}
	}
	return nil
}

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := framework.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}
