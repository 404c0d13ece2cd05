// Package options holds every setting of the manager binary in one type, Options, bound to
// its flags and environment variables in one place (AddFlags, through internal/settings).
// Each component's settings are a field of Options of the component's own Settings type,
// handed to the component whole: no setting is copied field by field on its way from the
// command line to where it is used. docs/flags.md is rendered from the same bindings.
package options

import (
	"errors"
	"flag"
	"fmt"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/gitread/usercredits-operator/controllers"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/httpapi"
	"github.com/gitread/usercredits-operator/internal/payments"
	"github.com/gitread/usercredits-operator/internal/settings"
)

// Options are every setting of the manager.
type Options struct {
	// Namespace holds the UserCredits the operator watches and serves.
	Namespace string
	// Kubeconfig is the cluster to use; empty follows client-go's rules ($KUBECONFIG,
	// in-cluster, ~/.kube/config).
	Kubeconfig string
	// Manager are the controller-runtime manager's settings.
	Manager ManagerSettings
	// Log is controller-runtime's zap logger configuration (its own --zap-* flags).
	Log zap.Options

	Auth       auth.Settings
	API        httpapi.Settings
	Accounts   account.Settings
	Controller controllers.Settings
	Stripe     payments.Settings
}

// ManagerSettings are the manager's own endpoints and leader election.
type ManagerSettings struct {
	MetricsBindAddress     string
	MetricsSecure          bool
	HealthProbeBindAddress string
	PprofBindAddress       string
	LeaderElect            bool
}

// AddFlags binds every setting: a setting is the one line that binds it here or in its
// component's AddFlags.
func (o *Options) AddFlags(b *settings.Binder) {
	b.Section("The manager")
	b.String(&o.Namespace, "namespace", "default", "Namespace whose UserCredits are watched and served.").
		FromEnv("POD_NAMESPACE").DefaultText("$POD_NAMESPACE, else default")
	b.String(&o.Kubeconfig, "kubeconfig", "", "Kubeconfig of the cluster to use.").DefaultText("client-go's rules")
	b.External("KUBECONFIG", "~/.kube/config", "Read by client-go when --kubeconfig is not given; in a Pod, the in-cluster configuration is used instead.")
	b.String(&o.Manager.MetricsBindAddress, "metrics-bind-address", ":8443", "Address of the Prometheus metrics endpoint; 0 disables it.")
	b.Bool(&o.Manager.MetricsSecure, "metrics-secure", true, "Serve metrics over HTTPS, only to callers whose token may get /metrics (TokenReview + SubjectAccessReview).")
	b.String(&o.Manager.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	b.String(&o.Manager.PprofBindAddress, "pprof-bind-address", "0", "Address of net/http/pprof (profiling, e.g. make bench); 0 disables it.")
	b.Bool(&o.Manager.LeaderElect, "leader-elect", false, "Elect one active controller among replicas with a Lease (the API serves on every replica).")
	b.Library(&o.Log, "Log", o.Log.BindFlags)
	o.Auth.AddFlags(b)
	o.API.AddFlags(b)
	o.Accounts.AddFlags(b)
	o.Controller.AddFlags(b)
	o.Stripe.AddFlags(b)
}

// New returns the default Options.
func New() *Options {
	o := &Options{}
	o.AddFlags(settings.Defaults())
	return o
}

// Parse reads args (without the program name) and the environment (lookupEnv) into new
// Options, and validates them. The Binder is returned for --help and the reference page.
func Parse(args []string, lookupEnv func(string) (string, bool)) (*Options, *settings.Binder, error) {
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	o := &Options{}
	b := settings.NewBinder(fs)
	o.AddFlags(b)
	if err := b.Parse(args, lookupEnv); err != nil {
		return nil, b, err
	}
	return o, b, o.Validate()
}

// Validate reports every setting the operator cannot run with.
func (o *Options) Validate() error {
	var errs []error
	if o.Namespace == "" {
		errs = append(errs, errors.New("--namespace is empty"))
	}
	for _, err := range []error{o.Auth.Validate(), o.API.Validate(), o.Accounts.Validate(), o.Controller.Validate(), o.Stripe.Validate()} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Logger is the operator's logger, as the --zap-* flags say.
func (o *Options) Logger() logr.Logger { return zap.New(zap.UseFlagOptions(&o.Log)) }

// RESTConfig is the connection to the cluster: --kubeconfig, else client-go's rules.
//
// Its answers are not compressed. The operator runs beside the apiserver, and its largest
// read by far is the informer's list of every object at start: gzipped, it costs the
// apiserver and the operator CPU that the requests served meanwhile wait for (a warming
// replica reads each new user from the apiserver). With the warm-up's reads from the watch
// cache and the list's pauses for them (internal/credits), it took the GET p99 of a
// warming replica at 20,000 users from 33 ms to 12 ms (make bench -scale-only).
func (o *Options) RESTConfig() (*rest.Config, error) {
	if o.Kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", o.Kubeconfig, err)
		}
		// As controller-runtime's own loader does (config.GetConfig): no client-side rate
		// limit (client-go's default, 5 requests a second, would cap the API's writes);
		// the apiserver's priority and fairness is the limit.
		if cfg.QPS == 0 {
			cfg.QPS = -1
		}
		cfg.DisableCompression = true
		return cfg, nil
	}
	cfg, err := config.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("no cluster configured (set --kubeconfig or KUBECONFIG, or run in a Pod): %w", err)
	}
	cfg.DisableCompression = true
	return cfg, nil
}
