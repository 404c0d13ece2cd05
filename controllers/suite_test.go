package controllers

import (
	"context"
	"fmt"
	"os"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/credits"
	"github.com/gitread/usercredits-operator/test/framework"
)

// testNamespace is the namespace the test manager watches.
const testNamespace = "credits-test"

var (
	env       *envtest.Environment
	k8sClient client.Client // direct to the apiserver: assertions never read a stale cache
	scheme    = runtime.NewScheme()
)

func TestMain(m *testing.M) {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(creditsv1alpha1.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr)))
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	cluster, err := framework.StartCluster(scheme, framework.ClusterOptions{Namespaces: []string{testNamespace}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = cluster.Stop() }()
	env, k8sClient = cluster.Env, cluster.Client

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgr, err := ctrl.NewManager(cluster.Config, ctrl.Options{
		Scheme:  scheme,
		Cache:   cache.Options{DefaultNamespaces: map[string]cache.Config{testNamespace: {}}},
		Metrics: metricsserver.Options{BindAddress: "0"},
	})
	users := credits.NewIndex()
	if err == nil {
		err = users.Register(ctx, mgr.GetCache())
	}
	if err == nil {
		err = (&UserCreditsReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("usercredits-controller"), Users: users,
			Settings: Settings{Workers: DefaultWorkers}}).SetupWithManager(mgr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "setting up the manager:", err)
		return 1
	}
	return framework.RunTests(m, mgr)
}

// eventually is framework.Eventually, short for the many waits here.
var eventually = framework.Eventually
