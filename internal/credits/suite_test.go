package credits_test

// The store's integration tests run against a real kube-apiserver and etcd, with a manager
// whose cache is configured as the operator's (operator.ManagerOptions): the index on
// spec.userID and the transform that reduces grant key records to a digest.

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/credits"
	"github.com/gitread/usercredits-operator/internal/operator"
	"github.com/gitread/usercredits-operator/internal/operator/options"
	"github.com/gitread/usercredits-operator/test/framework"
)

const testNamespace = "credits-store-test"

var (
	k8sClient client.Client  // straight to the apiserver
	mgr       ctrl.Manager   // its cache feeds users
	users     *credits.Index // what the store reads
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr)))
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	cluster, err := framework.StartCluster(operator.NewScheme(), framework.ClusterOptions{Namespaces: []string{testNamespace}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = cluster.Stop() }()
	k8sClient = cluster.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := options.New()
	o.Namespace, o.Manager.MetricsBindAddress, o.Manager.HealthProbeBindAddress = testNamespace, "0", "0"
	opts := operator.ManagerOptions(o)
	users = credits.NewIndex()
	if mgr, err = ctrl.NewManager(cluster.Config, opts); err == nil {
		err = users.Register(ctx, mgr.GetCache())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		return 1
	}
	return framework.RunTests(m, mgr)
}

// storedBalanceOf reads user's balance straight from the apiserver.
func storedBalanceOf(t *testing.T, user string) int64 {
	t.Helper()
	return storedBalance(t, account.ObjectNameForUser(user))
}

// newStore is credits.NewStore with the default settings, failing t on an error.
func newStore(t testing.TB, opts credits.StoreOptions) *credits.Store {
	t.Helper()
	opts.Settings, opts.WriteTimeout = account.DefaultSettings(), 5*time.Second
	store, err := credits.NewStore(opts)
	if err != nil {
		t.Fatal(err)
	}
	return store
}
