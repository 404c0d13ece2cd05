// Package operator wires the controller, the credits store and the HTTP API into one
// controller-runtime manager. cmd/main.go and the integration tests share it, so the tests
// run the same assembly the binary does.
package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/controllers"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/credits"
	"github.com/gitread/usercredits-operator/internal/httpapi"
	"github.com/gitread/usercredits-operator/internal/metrics"
	"github.com/gitread/usercredits-operator/internal/operator/options"
	"github.com/gitread/usercredits-operator/internal/payments"
)

// NewScheme returns a scheme with the built-in kinds and the credits.gitread.dev kinds.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(creditsv1alpha1.AddToScheme(s))
	return s
}

// ManagerOptions are the manager's options for o: its endpoints and leader election, the
// scheme, a memoizing RESTMapper, and a cache limited to o.Namespace without managedFields
// (the cache never needs them and they are most of an object's size) and, for UserCredits,
// with only what decisions read (credits.CacheTransform).
func ManagerOptions(o *options.Options) ctrl.Options {
	return managerOptions(o, credits.CacheTransform)
}

// managerOptions are ManagerOptions with transform as the UserCredits informer's
// transform: the operator's paces its first list (credits.ListPacer).
func managerOptions(o *options.Options, transform toolscache.TransformFunc) ctrl.Options {
	m := ctrl.Options{
		Scheme:         NewScheme(),
		MapperProvider: newMemoRESTMapper,
		Cache: cache.Options{
			DefaultNamespaces: map[string]cache.Config{o.Namespace: {}},
			DefaultTransform:  cache.TransformStripManagedFields(),
			ByObject:          map[client.Object]cache.ByObject{&creditsv1alpha1.UserCredits{}: {Transform: transform}},
			NewInformer:       newInformer,
		},
		Metrics:                       metricsserver.Options{BindAddress: o.Manager.MetricsBindAddress, SecureServing: o.Manager.MetricsSecure},
		HealthProbeBindAddress:        o.Manager.HealthProbeBindAddress,
		PprofBindAddress:              o.Manager.PprofBindAddress,
		LeaderElection:                o.Manager.LeaderElect,
		LeaderElectionID:              "usercredits.credits.gitread.dev",
		LeaderElectionNamespace:       o.Namespace,
		LeaderElectionReleaseOnCancel: true,
	}
	if o.Manager.MetricsSecure {
		m.Metrics.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return m
}

// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// +kubebuilder:rbac:urls=/.well-known/openid-configuration;/openid/v1/jwks,verbs=get
// Leader election: the Lease, and the core Events controller-runtime records about it.
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=system,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",namespace=system,resources=events,verbs=create;patch

// Operator is the assembled operator: a controller-runtime manager with the index of users,
// the UserCredits and CreditGrant controllers, the credits store, the Stripe webhook and
// the API server.
type Operator struct {
	Manager ctrl.Manager

	managerOptions ctrl.Options
	authenticator  *auth.Authenticator
	handler        *httpapi.Handler
	server         *httpapi.Server
	store          *credits.Store
	reconciler     *controllers.UserCreditsReconciler
	webhook        *payments.Webhook
}

// New assembles the operator for o on the cluster at cfg. customize, in tests, changes
// manager options that are not settings (several replicas in one process).
func New(ctx context.Context, cfg *rest.Config, o *options.Options, customize ...func(*ctrl.Options)) (*Operator, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	// The informer's first list gives way to the warm-up's reads of the apiserver.
	pacer := credits.NewListPacer()
	op := &Operator{managerOptions: managerOptions(o, pacer.Transform(credits.CacheTransform))}
	for _, c := range customize {
		c(&op.managerOptions)
	}
	var err error
	if op.Manager, err = ctrl.NewManager(cfg, op.managerOptions); err != nil {
		return nil, explainBindError(fmt.Errorf("creating the manager: %w", err), o)
	}
	users := credits.NewIndex()
	if err := users.Register(ctx, op.Manager.GetCache()); err != nil {
		return nil, err
	}
	foreign, err := foreignNames(ctx, op.Manager, o.Namespace)
	if err != nil {
		return nil, err
	}
	log := ctrl.Log.WithName("api")
	clientset, err := kubernetes.NewForConfig(op.Manager.GetConfig())
	if err != nil {
		return nil, err
	}
	limits := auth.DefaultLimits()
	if op.authenticator, err = newAuthenticator(ctx, clientset, o.Auth, limits); err != nil {
		return nil, err
	}
	authorizer := auth.NewResourceAuthorizer(clientset.AuthorizationV1().SubjectAccessReviews(), o.Namespace,
		creditsv1alpha1.GroupVersion.Group, "usercredits", limits)
	op.store, err = credits.NewStore(credits.StoreOptions{
		Settings:      o.Accounts,
		Objects:       users,
		Synced:        users.HasSynced,
		Foreign:       foreign,
		ForeignSynced: foreign.HasSynced,
		Pacer:         pacer,
		Client:        op.Manager.GetClient(),
		APIReader:     op.Manager.GetAPIReader(),
		Namespace:     o.Namespace,
		// A batch carries its requests' deadlines; the controller's expiries carry none.
		WriteTimeout: o.API.RequestTimeout,
		Recorder:     op.Manager.GetEventRecorder("usercredits-api"),
		Log:          log.WithName("store"),
	})
	if err != nil {
		return nil, err
	}
	op.reconciler = &controllers.UserCreditsReconciler{Settings: o.Controller, Client: op.Manager.GetClient(),
		Recorder: op.Manager.GetEventRecorder("usercredits-controller"), Users: users, Holds: op.store}
	if err := op.reconciler.SetupWithManager(op.Manager); err != nil {
		return nil, fmt.Errorf("setting up the controller: %w", err)
	}
	grants := &controllers.CreditGrantReconciler{Client: op.Manager.GetClient(),
		Recorder: op.Manager.GetEventRecorder("creditgrant-controller"), Grants: op.store, Users: users}
	if err := grants.SetupWithManager(op.Manager); err != nil {
		return nil, fmt.Errorf("setting up the CreditGrant controller: %w", err)
	}
	metrics.SetLowBalanceUsers(func() float64 {
		return float64(users.Count(func(o *creditsv1alpha1.UserCredits) bool {
			return meta.IsStatusConditionTrue(o.Status.Conditions, creditsv1alpha1.ConditionLowBalance)
		}))
	})
	op.webhook = &payments.Webhook{Settings: o.Stripe, Store: op.store, Log: log.WithName("stripe")}
	var stripeWebhook http.Handler
	if o.Stripe.Enabled() {
		stripeWebhook = op.webhook
	}
	op.handler, err = httpapi.NewHandler(httpapi.Options{
		Settings:      o.API,
		StripeWebhook: stripeWebhook,
		Verifier:      op.authenticator,
		Authorizer:    authorizer,
		Store:         op.store,
		Log:           log,
	})
	if err != nil {
		return nil, err
	}
	op.server = &httpapi.Server{Settings: o.API, Handler: op.handler, Log: log}
	api, err := op.server.Runnable(ctx)
	if err != nil {
		return nil, err
	}
	if err := op.Manager.Add(api); err != nil {
		return nil, err
	}
	if err := op.Manager.Add(op.store); err != nil {
		return nil, err
	}
	if err := op.Manager.Add(releaseListMemory{cache: op.Manager.GetCache(), users: users, log: log, started: time.Now()}); err != nil {
		return nil, err
	}
	if err := op.Manager.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	// Ready once the API listens: until the informer's first list of every object is in,
	// the store looks users it does not know yet up at the apiserver.
	if err := op.Manager.AddReadyzCheck("api-listening", op.server.Listening); err != nil {
		return nil, err
	}
	if err := op.Manager.AddReadyzCheck("foreign-names-listed", op.store.Ready); err != nil {
		return nil, err
	}
	return op, nil
}

// foreignNames is an index of the objects whose name is not the one the API gives their
// user (without account.NameLabel: a GitOps tool's names), fed by a cache of only those: its
// first list is one selection at the apiserver and holds few objects, so a replica knows
// them within moments of starting, long before its cache of every object is filled.
func foreignNames(ctx context.Context, mgr ctrl.Manager, namespace string) (*credits.Index, error) {
	notDerived, err := labels.Parse(account.NameLabel + " notin (" + account.NameDerived + ")")
	if err != nil {
		return nil, err
	}
	c, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(),
		DefaultNamespaces: map[string]cache.Config{namespace: {}},
		DefaultTransform:  cache.TransformStripManagedFields(),
		ByObject:          map[client.Object]cache.ByObject{&creditsv1alpha1.UserCredits{}: {Label: notDerived, Transform: credits.CacheTransform}},
	})
	if err != nil {
		return nil, err
	}
	foreign := credits.NewIndex()
	if err := foreign.Register(ctx, c); err != nil {
		return nil, err
	}
	return foreign, mgr.Add(censusCache{c})
}

// censusCache is the cache of foreign names as the manager's runnable. A bare cache needs
// no leader election, so the manager would start it with its other such runnables, which
// it starts only once its own cache has synced: the census would wait for the very list it
// is meant to spare (77 s to Ready at 100,000 objects, make bench). A runnable with a
// cache (GetCache) is started with the manager's own cache, at once, and the manager's
// other runnables wait for both first lists, of which the census's is the short one.
type censusCache struct{ cache.Cache }

// GetCache is the census's cache: the manager starts it among its caches.
func (c censusCache) GetCache() cache.Cache { return c.Cache }

// Start runs the operator until ctx ends.
func (op *Operator) Start(ctx context.Context) error { return op.Manager.Start(ctx) }

// APIAddress is the address the API listens on (the port picked for ":0").
func (op *Operator) APIAddress() string { return op.server.Address() }

// newAuthenticator builds the one authentication pipeline for s: Clerk session tokens and
// the cluster's ServiceAccount tokens, whose issuer is discovered unless set.
func newAuthenticator(ctx context.Context, clientset kubernetes.Interface, s auth.Settings, limits auth.Limits) (*auth.Authenticator, error) {
	sa := auth.ServiceAccountConfig{
		ServiceAccountSettings: s.ServiceAccounts,
		// The apiserver publishes its ServiceAccount signing keys here, whatever the issuer URL.
		JWKS:    func(ctx context.Context) ([]byte, error) { return restGet(ctx, clientset, "/openid/v1/jwks") },
		Reviews: clientset.AuthenticationV1().TokenReviews(),
	}
	if len(sa.Issuers) == 0 {
		issuer, err := DiscoverServiceAccountIssuer(ctx, clientset)
		if err != nil {
			return nil, fmt.Errorf("discovering the ServiceAccount token issuer (or set --service-account-issuer): %w", err)
		}
		sa.Issuers = []string{issuer}
	}
	return auth.NewAuthenticator(auth.Config{Clerk: &s.Clerk, ServiceAccounts: &sa, Limits: limits})
}

// DiscoverServiceAccountIssuer reads the issuer of the cluster's ServiceAccount tokens from
// the apiserver's OIDC discovery document.
func DiscoverServiceAccountIssuer(ctx context.Context, clientset kubernetes.Interface) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	data, err := restGet(ctx, clientset, "/.well-known/openid-configuration")
	if err != nil {
		return "", err
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal(data, &doc); err != nil || doc.Issuer == "" {
		return "", fmt.Errorf("no issuer in the OIDC discovery document")
	}
	return doc.Issuer, nil
}

// restGet reads a non-resource path of the apiserver with the operator's credentials.
func restGet(ctx context.Context, clientset kubernetes.Interface, path string) ([]byte, error) {
	return clientset.Discovery().RESTClient().Get().AbsPath(path).DoRaw(ctx)
}
