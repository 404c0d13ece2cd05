package options_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/gitread/usercredits-operator/internal/operator/options"
	"github.com/gitread/usercredits-operator/internal/settings"
	"github.com/gitread/usercredits-operator/test/framework"
)

// parse parses args and env as the manager does.
func parse(t *testing.T, args []string, env map[string]string) (*options.Options, *settings.Binder, error) {
	t.Helper()
	return options.Parse(args, func(name string) (string, bool) { v, ok := env[name]; return v, ok })
}

// setting is one setting of Options: where it sits, and its field.
type setting struct {
	path  string
	field reflect.Value
}

// settingsOf lists every setting in o: each field that is not a struct, and each struct a
// library binds as a whole (whole: the logger's zap.Options).
func settingsOf(o *options.Options, whole func(addr any) bool) []setting {
	var out []setting
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		if v.Kind() == reflect.Struct && !whole(v.Addr().Interface()) {
			for i := range v.NumField() {
				walk(v.Field(i), path+"."+v.Type().Field(i).Name)
			}
			return
		}
		out = append(out, setting{path, v})
	}
	walk(reflect.ValueOf(o).Elem(), "Options")
	return out
}

// ownedByLibrary reports whether b binds addr as a whole, through a library's own flags.
func ownedByLibrary(b *settings.Binder) func(any) bool {
	return func(addr any) bool { bd := b.Find(addr); return bd != nil && bd.Owner != "" }
}

func TestEverySettingIsBoundToAFlagOrAnEnvironmentVariable(t *testing.T) {
	o, b, err := parse(t, nil, map[string]string{"CLERK_SECRET_KEY": "sk_test"})
	if err != nil {
		t.Fatal(err)
	}
	bound := map[*settings.Binding]bool{}
	for _, s := range settingsOf(o, ownedByLibrary(b)) {
		bd := b.Find(s.field.Addr().Interface())
		if bd == nil {
			t.Errorf("%s is a setting without a flag or an environment variable: bind it in its AddFlags", s.path)
			continue
		}
		bound[bd] = true
	}
	for _, bd := range b.Bindings() {
		if bd.Target != nil && bd.Owner == "" && !bound[bd] {
			t.Errorf("--%s %s is bound to something that is not a setting in Options", bd.Flag, bd.Env)
		}
	}
	b.FlagSet().VisitAll(func(f *flag.Flag) {
		if b.Named("--"+f.Name) == nil {
			t.Errorf("--%s is a flag without a setting", f.Name)
		}
	})
}

func TestEveryFlagAndVariableHasATestValue(t *testing.T) {
	_, b, _ := parse(t, nil, nil)
	values := framework.ManagerSettings()
	for _, bd := range b.Bindings() {
		for _, name := range names(bd) {
			if _, ok := values[name]; !ok {
				t.Errorf("%s has no value in framework.ManagerSettings: the settings tests would not check it", name)
			}
			delete(values, name)
		}
	}
	for name := range values {
		t.Errorf("framework.ManagerSettings sets %s, which the manager does not have", name)
	}
}

// names are a binding's "--flag" and "ENV".
func names(bd *settings.Binding) []string {
	var out []string
	if bd.Flag != "" {
		out = append(out, "--"+bd.Flag)
	}
	if bd.Env != "" {
		out = append(out, bd.Env)
	}
	return out
}

// TestEverySettingArrivesInOptions sets every flag, and every environment variable no flag
// names, to a value other than its default, and checks that every setting changed.
func TestEverySettingArrivesInOptions(t *testing.T) {
	args, env := framework.SettingsArgs(framework.ManagerSettings())
	o, b, err := parse(t, args, env)
	if err != nil {
		t.Fatal(err)
	}
	defaults := options.New()
	for i, s := range settingsOf(o, ownedByLibrary(b)) {
		def := settingsOf(defaults, ownedByLibrary(b))[i]
		if bd := b.Find(s.field.Addr().Interface()); bd != nil && bd.Owner != "" {
			continue // the logger's flags: TestLogFlagsReachTheLogger
		}
		if reflect.DeepEqual(s.field.Interface(), def.field.Interface()) {
			t.Errorf("%s kept its default %v although its flag or environment variable was set", s.path, def.field.Interface())
		}
	}
	if o.Namespace != "settings-ns" || o.Stripe.WebhookSecret != "whsec_settings" || o.Controller.LowBalanceThreshold != 5 {
		t.Errorf("values arrived changed: namespace %q, webhook secret %q, threshold %d", o.Namespace, o.Stripe.WebhookSecret, o.Controller.LowBalanceThreshold)
	}
}

// TestEnvironmentSetsWhatItsFlagDoesNotSay: a variable that also has a flag sets the
// setting when the flag is absent; the flag wins when both are given.
func TestEnvironmentSetsWhatItsFlagDoesNotSay(t *testing.T) {
	values := framework.ManagerSettings()
	_, b, _ := parse(t, nil, nil)
	for _, bd := range b.Bindings() {
		if bd.Flag == "" || bd.Env == "" {
			continue
		}
		env := map[string]string{bd.Env: values[bd.Env], "CLERK_SECRET_KEY": "sk_test"}
		o, b2, err := parse(t, nil, env)
		if err != nil {
			t.Fatal(err)
		}
		if got := b2.Named(bd.Env).Target; reflect.ValueOf(got).Elem().Interface() != reflect.ValueOf(values[bd.Env]).Interface() {
			t.Errorf("%s=%s without --%s: the setting is %v", bd.Env, values[bd.Env], bd.Flag, reflect.ValueOf(got).Elem())
		}
		_ = o
		o, b2, err = parse(t, []string{"--" + bd.Flag + "=" + values["--"+bd.Flag]}, env)
		if err != nil {
			t.Fatal(err)
		}
		if got := reflect.ValueOf(b2.Named(bd.Env).Target).Elem().Interface(); got != values["--"+bd.Flag] {
			t.Errorf("--%s and %s both given: the setting is %v, want the flag's %s", bd.Flag, bd.Env, got, values["--"+bd.Flag])
		}
		_ = o
	}
}

// TestLogFlagsReachTheLogger checks the --zap-* flags through the logger the manager
// builds from Options (Options.Logger).
func TestLogFlagsReachTheLogger(t *testing.T) {
	logged := func(args ...string) string {
		o, _, err := parse(t, args, map[string]string{"CLERK_SECRET_KEY": "sk_test"})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		o.Log.DestWriter = &out
		log := o.Logger()
		log.V(1).Info("debug line")
		log.Info("info line")
		return out.String()
	}
	plain := logged()
	if strings.Contains(plain, "debug line") || !strings.Contains(plain, `"msg":"info line"`) {
		t.Fatalf("default logger: want JSON at info level, got:\n%s", plain)
	}
	for _, c := range []struct{ flag, want string }{
		{"--zap-log-level=debug", "debug line"},
		{"--zap-devel=true", "debug line"},
		{"--zap-encoder=console", "\tinfo line"},
		{"--zap-time-encoding=rfc3339", `"ts":"20`},
	} {
		if out := logged(c.flag); !strings.Contains(out, c.want) {
			t.Errorf("%s: the logger's output lacks %q:\n%s", c.flag, c.want, out)
		}
	}
	stack := func(args ...string) bool {
		o, _, _ := parse(t, args, map[string]string{"CLERK_SECRET_KEY": "sk_test"})
		var out bytes.Buffer
		o.Log.DestWriter = &out
		o.Logger().Info("with a stack?")
		return strings.Contains(out.String(), "stacktrace")
	}
	if stack() || !stack("--zap-stacktrace-level=info") {
		t.Errorf("--zap-stacktrace-level=info does not add stack traces to info lines")
	}
}

func TestValidateNamesTheSettingToFix(t *testing.T) {
	for flagArg, want := range map[string]string{
		"--api-request-timeout=0":                            "--api-request-timeout",
		"--reservation-ttl=500ms":                            "--reservation-ttl",
		"--reservation-ttl=25h":                              "--reservation-ttl",
		"--low-balance-threshold=-1":                         "--low-balance-threshold",
		"--controller-workers=0":                             "--controller-workers must be between 1 and 256, not 0",
		"--controller-workers=257":                           "--controller-workers",
		"--controller-workers=2.5":                           "--controller-workers: not a whole number",
		"--price-per-credit-cents=0":                         "--price-per-credit-cents",
		"--checkout-currency=dollars":                        "--checkout-currency",
		"--grant-key-retention=0s":                           "--grant-key-retention",
		"--user-rate-limit=-1":                               "--user-rate-limit",
		"--user-rate-limit=NaN":                              "--user-rate-limit must be 0 (off) or between 1e-09 and 1e+09 requests per second, not NaN",
		"--user-rate-limit=+Inf":                             "--user-rate-limit",
		"--user-rate-limit=2e9":                              "--user-rate-limit",
		"--user-rate-limit=1e-12":                            "--user-rate-limit",
		"--service-account-rate-limit=-1":                    "--service-account-rate-limit",
		"--service-account-rate-limit=NaN":                   "--service-account-rate-limit",
		"--service-account-rate-limit=-Inf":                  "--service-account-rate-limit",
		"--cors-allowed-origins=*":                           `--cors-allowed-origins "*"`,
		"--cors-allowed-origins=https://a.example/":          `--cors-allowed-origins "https://a.example/": no browser sends it as its Origin; browsers send it as https://a.example `,
		"--cors-allowed-origins=https://a.example,b.example": `--cors-allowed-origins "b.example"`,
		"--service-account-audience=,":                       "--service-account-audience",
		"--namespace=":                                       "--namespace",
		"--api-bind-address=":                                "--api-bind-address",
		"--reservation-ttl=soon":                             "--reservation-ttl: not a duration",
		"--low-balance-threshold=1.5":                        "--low-balance-threshold: not a whole number",
		"--no-such-flag":                                     "no-such-flag",
		"stray-argument":                                     "stray-argument",
	} {
		_, _, err := parse(t, []string{flagArg}, map[string]string{"CLERK_SECRET_KEY": "sk_test"})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error naming %s", flagArg, err, want)
		}
	}
	if _, _, err := parse(t, nil, nil); err == nil || !strings.Contains(err.Error(), "CLERK_JWT_KEY") || !strings.Contains(err.Error(), "make run") {
		t.Errorf("no Clerk key: got %v, want an error saying to set CLERK_JWT_KEY or use make run", err)
	}
}

// TestRateLimitBoundsAreAccepted: the refusals above stop exactly at the documented range:
// 0 (off) and 1e-9 to 1e9 requests per second start.
func TestRateLimitBoundsAreAccepted(t *testing.T) {
	for _, v := range []string{"0", "1e-9", "0.5", "1e9"} {
		for _, flag := range []string{"--user-rate-limit", "--service-account-rate-limit"} {
			if _, _, err := parse(t, []string{flag + "=" + v}, map[string]string{"CLERK_SECRET_KEY": "sk_test"}); err != nil {
				t.Errorf("%s=%s: %v; want it accepted", flag, v, err)
			}
		}
	}
}

// TestControllerWorkersBoundsAreAccepted: --controller-workers is refused just outside
// 1–256 (above) and accepted at both ends; without it the controller judges 8 at once.
func TestControllerWorkersBoundsAreAccepted(t *testing.T) {
	for _, v := range []string{"1", "256"} {
		o, _, err := parse(t, []string{"--controller-workers=" + v}, map[string]string{"CLERK_SECRET_KEY": "sk_test"})
		if err != nil {
			t.Errorf("--controller-workers=%s: %v; want it accepted", v, err)
		} else if got := fmt.Sprint(o.Controller.Workers); got != v {
			t.Errorf("--controller-workers=%s: the controller has %s workers", v, got)
		}
	}
	o, _, err := parse(t, nil, map[string]string{"CLERK_SECRET_KEY": "sk_test"})
	if err != nil || o.Controller.Workers != 8 {
		t.Errorf("default workers %d (%v), want 8", o.Controller.Workers, err)
	}
}

func TestDefaultsAreWhatTheFlagsSay(t *testing.T) {
	o, _, err := parse(t, nil, map[string]string{"CLERK_SECRET_KEY": "sk_test"})
	if err != nil {
		t.Fatal(err)
	}
	want := options.New()
	want.Auth.Clerk.SecretKey = "sk_test"
	o.Log, want.Log = options.Options{}.Log, options.Options{}.Log // flag values hold pointers into each
	if !reflect.DeepEqual(o, want) {
		t.Errorf("parsed defaults %+v differ from options.New() %+v", o, want)
	}
	if o.API.DefaultReservationTTL.String() != "15m0s" || o.API.RequestTimeout.String() != "5s" || o.Stripe.PricePerCreditCents != 125 {
		t.Errorf("documented defaults changed: %+v", o)
	}
}

// TestConnectionAsksForUncompressedAnswers: the connection to the apiserver, from
// --kubeconfig or from $KUBECONFIG (client-go's rules, as in a Pod), asks for answers
// without gzip (RESTConfig says why) and without a client-side rate limit.
func TestConnectionAsksForUncompressedAnswers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	kubeconfig := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n" +
		"users:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n"
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	o := options.New()
	o.Kubeconfig = path // what --kubeconfig sets
	fromFlag, err := o.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", path)
	fromEnv, err := options.New().RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	for what, cfg := range map[string]*rest.Config{"--kubeconfig": fromFlag, "$KUBECONFIG": fromEnv} {
		if !cfg.DisableCompression || cfg.QPS >= 0 || cfg.Host != "https://127.0.0.1:6443" {
			t.Errorf("%s: compression off %v, QPS %v, host %q; want compression off, no client-side limit, the file's server", what, cfg.DisableCompression, cfg.QPS, cfg.Host)
		}
	}
}
