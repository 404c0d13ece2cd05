// Command manager runs the UserCredits controller and the /api/credits HTTP API in one
// controller-runtime manager.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	// Root CAs inside the binary: the image has no /etc/ssl, and Clerk's JWKS is HTTPS.
	_ "golang.org/x/crypto/x509roots/fallback"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/gitread/usercredits-operator/internal/controlplane"
	"github.com/gitread/usercredits-operator/internal/credits"
	"github.com/gitread/usercredits-operator/internal/operator"
	"github.com/gitread/usercredits-operator/internal/payments"
)

type options struct {
	namespace         string
	metricsAddr       string
	metricsSecure     bool
	probeAddr         string
	pprofAddr         string
	leaderElect       bool
	localControlPlane string
	localKubeconfig   string
	crdDir            string

	apiAddr           string
	requestTimeout    time.Duration
	clerkAPIURL       string
	authorizedParties string
	corsOrigins       string
	allowUserWrites   bool
	devAuth           bool
	saIssuers         string
	saAudiences       string
	userRateLimit     float64
	saRateLimit       float64
	apiCertDir        string
	grantKeyRetention time.Duration
	reservationTTL    time.Duration
	lowBalance        int64
	pricePerCredit    int64
}

func main() {
	var opts options
	defaultNS := os.Getenv("POD_NAMESPACE")
	if defaultNS == "" {
		defaultNS = "default"
	}
	flag.StringVar(&opts.namespace, "namespace", defaultNS, "Namespace whose UserCredits are watched and served (default: $POD_NAMESPACE, else default).")
	flag.StringVar(&opts.metricsAddr, "metrics-bind-address", ":8443", "Address of the Prometheus metrics endpoint; 0 disables it.")
	flag.BoolVar(&opts.metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS, only to callers whose token may get /metrics (TokenReview + SubjectAccessReview).")
	flag.StringVar(&opts.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	flag.StringVar(&opts.pprofAddr, "pprof-bind-address", "0", "Address of net/http/pprof (for profiling, e.g. make bench); 0 disables it.")
	flag.BoolVar(&opts.leaderElect, "leader-elect", false, "Elect one active controller among replicas with a Lease (the API serves on every replica).")
	flag.StringVar(&opts.localControlPlane, "local-control-plane", "never",
		"auto: when no cluster is configured (no --kubeconfig, $KUBECONFIG, in-cluster config or ~/.kube/config), start a local kube-apiserver and etcd from $KUBEBUILDER_ASSETS; never: require a cluster.")
	flag.StringVar(&opts.localKubeconfig, "local-kubeconfig", "bin/local-kubeconfig", "Where the local control plane's admin kubeconfig is written.")
	flag.StringVar(&opts.crdDir, "local-crd-dir", "config/crd/bases", "CRDs installed into the local control plane.")
	flag.StringVar(&opts.apiAddr, "api-bind-address", ":8080", "Address of the /api/credits HTTP API.")
	flag.DurationVar(&opts.requestTimeout, "api-request-timeout", 5*time.Second, "Upper bound on each API request's authentication and storage work.")
	flag.StringVar(&opts.clerkAPIURL, "clerk-api-url", "", "Clerk Backend API base URL for the JWKS (default: Clerk's own).")
	flag.StringVar(&opts.authorizedParties, "authorized-parties", "", "Comma-separated origins accepted in the token's azp claim; empty accepts any.")
	flag.StringVar(&opts.corsOrigins, "cors-allowed-origins", "", "Comma-separated browser origins allowed to call the API.")
	flag.BoolVar(&opts.allowUserWrites, "allow-user-writes", false, "Let Clerk users POST their own balance. Off: a user who sets their own balance mints free credits.")
	flag.BoolVar(&opts.devAuth, "dev-auth", false, "With no Clerk key, generate a local signing key and print a token (development only; implied on a local control plane).")
	flag.StringVar(&opts.saIssuers, "service-account-issuer", "", "Comma-separated iss of the cluster's ServiceAccount tokens (default: discovered from the apiserver).")
	flag.StringVar(&opts.saAudiences, "service-account-audience", operator.DefaultServiceAccountAudience,
		"Comma-separated audiences a ServiceAccount token must be bound to (projected token volume or kubectl create token --audience). "+
			"Add the apiserver's own audience only while migrating callers.")
	flag.Float64Var(&opts.userRateLimit, "user-rate-limit", 20, "Requests per second each Clerk user may send (burst: twice that); 0 disables.")
	flag.Float64Var(&opts.saRateLimit, "service-account-rate-limit", 0, "Requests per second each ServiceAccount may send (burst: twice that); 0 disables.")
	flag.StringVar(&opts.apiCertDir, "api-cert-dir", "", "Directory with tls.crt and tls.key: serve the API over HTTPS only, reloading renewed files. Empty: plain HTTP.")
	flag.DurationVar(&opts.grantKeyRetention, "grant-key-retention", credits.DefaultGrantKeyRetention,
		"How long a grant's Idempotency-Key is honoured: a retried grant within it is never applied twice (keys of other operations: 24h, last 100).")
	flag.DurationVar(&opts.reservationTTL, "reservation-ttl", 15*time.Minute, "How long a hold lasts when POST /api/credits/reserve does not say (ttlSeconds, at most 24h).")
	flag.Int64Var(&opts.lowBalance, "low-balance-threshold", 0, "At or below this many available credits a user's LowBalance condition is True (Warning Event LowBalance); 0: only objects with spec.lowBalanceThreshold.")
	flag.Int64Var(&opts.pricePerCredit, "price-per-credit-cents", payments.DefaultPricePerCreditCents,
		"Price of one credit in the Checkout currency's cents: a paid session without metadata.credits grants amount_total / this (STRIPE_WEBHOOK_SECRET enables the webhook).")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := run(opts); err != nil {
		ctrl.Log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

func run(opts options) error {
	log := ctrl.Log.WithName("setup")
	kubeconfigFlag := ""
	if f := flag.Lookup("kubeconfig"); f != nil {
		kubeconfigFlag = f.Value.String()
	}
	if opts.localControlPlane != "auto" || controlplane.ClusterConfigured(kubeconfigFlag) {
		cfg, err := ctrl.GetConfig()
		if err != nil {
			return fmt.Errorf("no cluster configured (set --kubeconfig or KUBECONFIG, or use --local-control-plane=auto): %w", err)
		}
		return startManager(ctrl.SetupSignalHandler(), cfg, opts, "")
	}

	log.Info("no cluster configured: starting a local control plane")
	// Unlike ctrl.SetupSignalHandler, a second Ctrl-C must not exit before the control
	// plane's processes are stopped, or they would be left running.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	kubeconfig, err := filepath.Abs(opts.localKubeconfig)
	if err != nil {
		return err
	}
	local, err := controlplane.StartLocal(opts.crdDir, kubeconfig)
	if err != nil {
		return err
	}
	defer func() {
		if err := local.Stop(); err != nil {
			log.Error(err, "stopping the local control plane")
			return
		}
		log.Info("local control plane stopped")
	}()
	opts.devAuth = true // a throw-away local cluster is development by definition
	return startManager(ctx, local.Config, opts, local.KubeconfigPath)
}

func startManager(ctx context.Context, cfg *rest.Config, opts options, localKubeconfig string) error {
	clerkConfig, dev, err := operator.NewClerkConfig(operator.AuthOptions{
		JWTKeyPEM:         os.Getenv("CLERK_JWT_KEY"),
		SecretKey:         os.Getenv("CLERK_SECRET_KEY"),
		APIURL:            opts.clerkAPIURL,
		AuthorizedParties: splitList(opts.authorizedParties),
		DevAuth:           opts.devAuth,
	})
	if err != nil {
		return err
	}

	mgrOpts := operator.ManagerOptions(opts.namespace)
	mgrOpts.Metrics = metricsserver.Options{BindAddress: opts.metricsAddr, SecureServing: opts.metricsSecure}
	if opts.metricsSecure {
		mgrOpts.Metrics.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	mgrOpts.HealthProbeBindAddress = opts.probeAddr
	mgrOpts.PprofBindAddress = opts.pprofAddr
	mgrOpts.LeaderElection = opts.leaderElect
	mgrOpts.LeaderElectionID = "usercredits.credits.gitread.dev"
	mgrOpts.LeaderElectionNamespace = opts.namespace
	mgrOpts.LeaderElectionReleaseOnCancel = true
	mgr, err := ctrl.NewManager(cfg, mgrOpts)
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	err = operator.Setup(ctx, mgr, operator.Config{
		Namespace:               opts.namespace,
		APIBindAddress:          opts.apiAddr,
		Clerk:                   clerkConfig,
		ServiceAccountIssuers:   splitList(opts.saIssuers),
		ServiceAccountAudiences: splitList(opts.saAudiences),
		UserRateLimit:           opts.userRateLimit,
		ServiceAccountRateLimit: opts.saRateLimit,
		APICertDir:              opts.apiCertDir,
		AllowUserWrites:         opts.allowUserWrites || dev != nil,
		RequestTimeout:          opts.requestTimeout,
		CORSAllowedOrigins:      splitList(opts.corsOrigins),
		GrantKeyRetention:       opts.grantKeyRetention,
	})
	if err != nil {
		return err
	}
	scheme := "http"
	if opts.apiCertDir != "" {
		scheme = "https"
	}
	printUsage(localKubeconfig, scheme+"://127.0.0.1"+opts.apiAddr[strings.LastIndex(opts.apiAddr, ":"):], dev)
	ctrl.Log.WithName("setup").Info("starting manager", "namespace", opts.namespace, "leaderElection", opts.leaderElect, "devAuth", dev != nil)
	return mgr.Start(ctx)
}

func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// printUsage tells the person at the terminal how to reach what just started.
func printUsage(kubeconfig, apiBase string, dev *operator.DevSession) {
	if kubeconfig == "" && dev == nil {
		return
	}
	var b strings.Builder
	if kubeconfig != "" {
		fmt.Fprintf(&b, "\nLocal control plane is up. In another terminal:\n\n  export KUBECONFIG=%s\n"+
			"  kubectl apply --server-side -f config/samples/\n  kubectl get uc\n", kubeconfig)
	}
	if dev != nil {
		url := apiBase + "/api/credits"
		fmt.Fprintf(&b, "\nDev auth: a local signing key; this token is %s for 24h:\n\n  export TOKEN=%s\n\n"+
			"  curl -s %s -H \"Authorization: Bearer $TOKEN\"\n"+
			"  curl -s -X POST %s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{\"credits\": 10}'\n",
			dev.UserID, dev.Token, url, url)
	}
	b.WriteString("\nCtrl-C stops everything.\n\n")
	fmt.Fprint(os.Stderr, b.String())
}
