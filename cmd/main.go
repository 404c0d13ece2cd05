// Command manager runs the UserCredits controller (and, later, its HTTP API) in one
// controller-runtime manager.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/controllers"
	"github.com/gitread/usercredits-operator/internal/credits"
	"github.com/gitread/usercredits-operator/internal/devcluster"
)

type options struct {
	namespace         string
	metricsAddr       string
	probeAddr         string
	leaderElect       bool
	localControlPlane string
	localKubeconfig   string
	crdDir            string
}

func main() {
	var opts options
	defaultNS := os.Getenv("POD_NAMESPACE")
	if defaultNS == "" {
		defaultNS = "default"
	}
	flag.StringVar(&opts.namespace, "namespace", defaultNS, "Namespace whose UserCredits are watched and served (default: $POD_NAMESPACE, else default).")
	flag.StringVar(&opts.metricsAddr, "metrics-bind-address", ":8082", "Address of the Prometheus metrics endpoint; 0 disables it.")
	flag.StringVar(&opts.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	flag.BoolVar(&opts.leaderElect, "leader-elect", false, "Elect one active controller among replicas with a Lease.")
	flag.StringVar(&opts.localControlPlane, "local-control-plane", "never",
		"auto: when no cluster is configured (no --kubeconfig, $KUBECONFIG, in-cluster config or ~/.kube/config), start a local kube-apiserver and etcd from $KUBEBUILDER_ASSETS; never: require a cluster.")
	flag.StringVar(&opts.localKubeconfig, "local-kubeconfig", "bin/local-kubeconfig", "Where the local control plane's admin kubeconfig is written.")
	flag.StringVar(&opts.crdDir, "local-crd-dir", "config/crd/bases", "CRDs installed into the local control plane.")
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
	if opts.localControlPlane != "auto" || devcluster.ClusterConfigured(kubeconfigFlag) {
		cfg, err := ctrl.GetConfig()
		if err != nil {
			return fmt.Errorf("no cluster configured (set --kubeconfig or KUBECONFIG, or use --local-control-plane=auto): %w", err)
		}
		return startManager(ctrl.SetupSignalHandler(), cfg, opts)
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
	local, err := devcluster.Start(opts.crdDir, kubeconfig)
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
	printLocalUsage(local.KubeconfigPath)
	return startManager(ctx, local.Config, opts)
}

func startManager(ctx context.Context, cfg *rest.Config, opts options) error {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        newScheme(),
		Cache:                         cache.Options{DefaultNamespaces: map[string]cache.Config{opts.namespace: {}}},
		Metrics:                       metricsserver.Options{BindAddress: opts.metricsAddr},
		HealthProbeBindAddress:        opts.probeAddr,
		LeaderElection:                opts.leaderElect,
		LeaderElectionID:              "usercredits.credits.gitread.dev",
		LeaderElectionNamespace:       opts.namespace,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if err := credits.IndexByUserID(ctx, mgr.GetFieldIndexer()); err != nil {
		return fmt.Errorf("indexing spec.userID: %w", err)
	}
	reconciler := &controllers.UserCreditsReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("usercredits-controller")}
	if err := reconciler.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	ctrl.Log.WithName("setup").Info("starting manager", "namespace", opts.namespace, "leaderElection", opts.leaderElect)
	return mgr.Start(ctx)
}

func printLocalUsage(kubeconfig string) {
	fmt.Fprintf(os.Stderr, `
Local control plane is up. In another terminal:

  export KUBECONFIG=%[1]s
  kubectl apply --server-side -f config/samples/
  kubectl get uc

Ctrl-C stops the operator and the control plane.

`, kubeconfig)
}

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(creditsv1alpha1.AddToScheme(s))
	return s
}
