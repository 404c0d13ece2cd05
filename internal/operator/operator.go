// Package operator wires the controller, the credits store and the HTTP API into one
// controller-runtime manager. cmd/main.go and the integration tests share it, so the tests
// run the same assembly the binary does.
package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/controllers"
	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/credits"
	"github.com/gitread/usercredits-operator/internal/httpapi"
)

// Config is what the components need beyond the manager itself.
type Config struct {
	// Namespace holds the UserCredits objects the operator watches and serves.
	Namespace string
	// APIBindAddress is where the API listens, unless APIListener is set.
	APIBindAddress string
	APIListener    net.Listener
	// Verifier verifies Clerk session tokens.
	Verifier auth.Verifier
	// ServiceAccountIssuers are the iss values of the cluster's ServiceAccount tokens; empty
	// means discover it from the apiserver's /.well-known/openid-configuration.
	ServiceAccountIssuers []string
	// AllowUserWrites lets Clerk users set their own balance (dev mode, trusted setups).
	AllowUserWrites    bool
	RequestTimeout     time.Duration
	CORSAllowedOrigins []string
	// GrantKeyRetention is how long grant Idempotency-Keys are honoured (default 30 days).
	GrantKeyRetention time.Duration
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
// never needs them and they are most of an object's size).
func ManagerOptions(namespace string) ctrl.Options {
	return ctrl.Options{
		Scheme:         NewScheme(),
		MapperProvider: newMemoRESTMapper,
		Cache: cache.Options{
			DefaultNamespaces: map[string]cache.Config{namespace: {}},
			DefaultTransform:  cache.TransformStripManagedFields(),
		},
	}
}

// How long TokenReview and SubjectAccessReview answers are reused, and how many are kept:
// a revoked token or RoleBinding takes effect within reviewTTL.
const (
	reviewTTL       = 10 * time.Second
	reviewCacheSize = 10_000
)

// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// +kubebuilder:rbac:urls=/.well-known/openid-configuration,verbs=get
// Leader election: the Lease, and the core Events controller-runtime records about it.
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=system,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",namespace=system,resources=events,verbs=create;patch

// Setup adds the spec.userID index, the UserCredits controller, the credits API server and
// the health checks to mgr.
func Setup(ctx context.Context, mgr ctrl.Manager, cfg Config) error {
	if cfg.Verifier == nil {
		return errors.New("no token verifier configured")
	}
	if err := credits.IndexByUserID(ctx, mgr.GetFieldIndexer()); err != nil {
		return fmt.Errorf("indexing spec.userID: %w", err)
	}
	recorder := mgr.GetEventRecorder("usercredits-controller")
	reconciler := &controllers.UserCreditsReconciler{Client: mgr.GetClient(), Recorder: recorder}
	if err := reconciler.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the controller: %w", err)
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
	verifier := &auth.IssuerRouter{
		Clerk:                 cfg.Verifier,
		ServiceAccounts:       auth.NewServiceAccountVerifier(clientset.AuthenticationV1().TokenReviews(), reviewTTL, reviewCacheSize),
		ServiceAccountIssuers: issuers,
	}
	authorizer := auth.NewResourceAuthorizer(clientset.AuthorizationV1().SubjectAccessReviews(), cfg.Namespace,
		creditsv1alpha1.GroupVersion.Group, "usercredits", reviewTTL, reviewCacheSize)
	store := credits.NewStore(credits.StoreOptions{
		Cache:     mgr.GetCache(),
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Namespace: cfg.Namespace,
		Recorder:  mgr.GetEventRecorder("usercredits-api"),
		Log:       log.WithName("store"),

		GrantKeyRetention: cfg.GrantKeyRetention,
	})
	handler := httpapi.NewHandler(httpapi.Options{
		Verifier:           verifier,
		Authorizer:         authorizer,
		Store:              store,
		AllowUserWrites:    cfg.AllowUserWrites,
		RequestTimeout:     cfg.RequestTimeout,
		CORSAllowedOrigins: cfg.CORSAllowedOrigins,
		Log:                log,
	})
	server := &httpapi.Server{Addr: cfg.APIBindAddress, Listener: cfg.APIListener, Handler: handler, Log: log}
	if err := mgr.Add(server); err != nil {
		return err
	}

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("api-listening", server.Listening); err != nil {
		return err
	}
	return mgr.AddReadyzCheck("cache-synced", CacheSynced(mgr.GetCache()))
}

// CacheSynced is a readiness check that passes once the informer cache has synced: before that, reads would block.
func CacheSynced(c cache.Cache) healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), 50*time.Millisecond)
		defer cancel()
		if !c.WaitForCacheSync(ctx) {
			return errors.New("informer cache not synced yet")
		}
		return nil
	}
}

// DiscoverServiceAccountIssuer reads the issuer of the cluster's ServiceAccount tokens from
// the apiserver's OIDC discovery document.
func DiscoverServiceAccountIssuer(ctx context.Context, clientset kubernetes.Interface) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	data, err := clientset.Discovery().RESTClient().Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
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
