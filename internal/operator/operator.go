// Package operator wires the controller, the credits store and the HTTP API into one
// controller-runtime manager. cmd/main.go and the integration tests share it, so the tests
// run the same assembly the binary does.
package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/controllers"
	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/credits"
	"github.com/gitread/usercredits-operator/internal/httpapi"
	"github.com/gitread/usercredits-operator/internal/metrics"
	"github.com/gitread/usercredits-operator/internal/payments"
)

// Config is what the components need beyond the manager itself.
type Config struct {
	// Namespace holds the UserCredits objects the operator watches and serves.
	Namespace string
	// APIBindAddress is where the API listens, unless APIListener is set.
	APIBindAddress string
	APIListener    net.Listener
	// Clerk says how Clerk session tokens are verified.
	Clerk auth.ClerkConfig
	// ServiceAccountIssuers are the iss values of the cluster's ServiceAccount tokens; empty
	// means discover it from the apiserver's /.well-known/openid-configuration.
	ServiceAccountIssuers []string
	// ServiceAccountAudiences are the audiences a ServiceAccount token must be bound to
	// (default DefaultServiceAccountAudience).
	ServiceAccountAudiences []string
	// UserRateLimit and ServiceAccountRateLimit are requests per second per Clerk user and
	// per ServiceAccount (burst twice that); 0 is unlimited.
	UserRateLimit, ServiceAccountRateLimit float64
	// APICertDir, when set, holds tls.crt and tls.key: the API is served over HTTPS only,
	// and renewed files are picked up without a restart.
	APICertDir string
	// AllowUserWrites lets Clerk users set their own balance (dev mode, trusted setups).
	AllowUserWrites    bool
	RequestTimeout     time.Duration
	CORSAllowedOrigins []string
	// GrantKeyRetention is how long grant Idempotency-Keys are honoured (default 30 days).
	GrantKeyRetention time.Duration
	// DefaultReservationTTL is how long a hold lasts when its request does not say (15m).
	DefaultReservationTTL time.Duration
	// StripeWebhookSecret enables POST /api/webhooks/stripe (STRIPE_WEBHOOK_SECRET).
	StripeWebhookSecret string
	// PricePerCreditCents converts a Checkout Session's amount_total to credits (125).
	PricePerCreditCents int64
	// LowBalanceThreshold: at or below it, a user's LowBalance condition is True; 0 leaves
	// it to each object's spec.lowBalanceThreshold.
	LowBalanceThreshold int64
}

// NewScheme returns a scheme with the built-in kinds and UserCredits.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(creditsv1alpha1.AddToScheme(s))
	return s
}

// ManagerOptions returns the manager options the components rely on: the scheme, a
// memoizing RESTMapper, and a cache limited to namespace without managedFields (the cache
// never needs them and they are most of an object's size) and, for UserCredits, with the
// grant key records reduced to a digest (credits.CacheTransform).
func ManagerOptions(namespace string) ctrl.Options {
	return ctrl.Options{
		Scheme:         NewScheme(),
		MapperProvider: newMemoRESTMapper,
		Cache: cache.Options{
			DefaultNamespaces: map[string]cache.Config{namespace: {}},
			DefaultTransform:  cache.TransformStripManagedFields(),
			ByObject:          map[client.Object]cache.ByObject{&creditsv1alpha1.UserCredits{}: {Transform: credits.CacheTransform}},
		},
	}
}

// DefaultServiceAccountAudience is the audience in-cluster callers request their projected
// ServiceAccount tokens for: a token for this API is useless against the apiserver.
const DefaultServiceAccountAudience = "credits.gitread.dev"

// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// +kubebuilder:rbac:urls=/.well-known/openid-configuration;/openid/v1/jwks,verbs=get
// Leader election: the Lease, and the core Events controller-runtime records about it.
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=system,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",namespace=system,resources=events,verbs=create;patch

// Setup adds the index of users, the UserCredits controller, the credits API server and
// the health checks to mgr.
func Setup(ctx context.Context, mgr ctrl.Manager, cfg Config) error {
	users := credits.NewIndex()
	if err := users.Register(ctx, mgr.GetCache()); err != nil {
		return err
	}
	log := ctrl.Log.WithName("api")
	clientset, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return err
	}
	issuers := cfg.ServiceAccountIssuers
	if len(issuers) == 0 {
		issuer, err := DiscoverServiceAccountIssuer(ctx, clientset)
		if err != nil {
			return fmt.Errorf("discovering the ServiceAccount token issuer (or set --service-account-issuer): %w", err)
		}
		issuers = []string{issuer}
	}
	audiences := cfg.ServiceAccountAudiences
	if len(audiences) == 0 {
		audiences = []string{DefaultServiceAccountAudience}
	}
	limits := auth.DefaultLimits()
	authenticator, err := auth.NewAuthenticator(auth.Config{
		Clerk: &cfg.Clerk,
		ServiceAccounts: &auth.ServiceAccountConfig{
			Issuers:   issuers,
			Audiences: audiences,
			// The apiserver publishes its ServiceAccount signing keys here, whatever the issuer URL.
			JWKS:    func(ctx context.Context) ([]byte, error) { return restGet(ctx, clientset, "/openid/v1/jwks") },
			Reviews: clientset.AuthenticationV1().TokenReviews(),
		},
		Limits: limits,
	})
	if err != nil {
		return err
	}
	authorizer := auth.NewResourceAuthorizer(clientset.AuthorizationV1().SubjectAccessReviews(), cfg.Namespace,
		creditsv1alpha1.GroupVersion.Group, "usercredits", limits)
	store := credits.NewStore(credits.StoreOptions{
		Objects:   users,
		Synced:    users.HasSynced,
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Namespace: cfg.Namespace,
		Recorder:  mgr.GetEventRecorder("usercredits-api"),
		Log:       log.WithName("store"),

		GrantKeyRetention: cfg.GrantKeyRetention,
	})
	reconciler := &controllers.UserCreditsReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("usercredits-controller"),
		Users: users, Holds: store, LowBalanceThreshold: cfg.LowBalanceThreshold}
	if err := reconciler.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the controller: %w", err)
	}
	metrics.SetLowBalanceUsers(func() float64 {
		return float64(users.Count(func(o *creditsv1alpha1.UserCredits) bool {
			return meta.IsStatusConditionTrue(o.Status.Conditions, creditsv1alpha1.ConditionLowBalance)
		}))
	})
	var stripeWebhook http.Handler
	if cfg.StripeWebhookSecret != "" {
		price := cfg.PricePerCreditCents
		if price <= 0 {
			price = payments.DefaultPricePerCreditCents
		}
		timeout := cfg.RequestTimeout
		if timeout <= 0 {
			timeout = 5 * time.Second
		}
		stripeWebhook = &payments.Webhook{Secret: cfg.StripeWebhookSecret, PricePerCreditCents: price, Store: store, Timeout: timeout, Log: log.WithName("stripe")}
	}
	handler := httpapi.NewHandler(httpapi.Options{
		StripeWebhook:           stripeWebhook,
		Verifier:                authenticator,
		Authorizer:              authorizer,
		Store:                   store,
		AllowUserWrites:         cfg.AllowUserWrites,
		RequestTimeout:          cfg.RequestTimeout,
		CORSAllowedOrigins:      cfg.CORSAllowedOrigins,
		UserRateLimit:           cfg.UserRateLimit,
		ServiceAccountRateLimit: cfg.ServiceAccountRateLimit,
		Log:                     log,
	})
	server := &httpapi.Server{Addr: cfg.APIBindAddress, Listener: cfg.APIListener, Handler: handler, CertDir: cfg.APICertDir, Log: log}
	api, err := server.Runnable(ctx)
	if err != nil {
		return err
	}
	if err := mgr.Add(api); err != nil {
		return err
	}

	if err := mgr.Add(releaseListMemory{cache: mgr.GetCache(), users: users, log: log, started: time.Now()}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	// Ready once the API listens: until the informer's first list of every object is in,
	// the store looks users it does not know yet up at the apiserver.
	return mgr.AddReadyzCheck("api-listening", server.Listening)
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
