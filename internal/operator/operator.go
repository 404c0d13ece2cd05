// Package operator wires the controller, the credits store and the HTTP API into one
// controller-runtime manager. cmd/main.go and the integration tests share it, so the tests
// run the same assembly the binary does.
package operator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
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
	Verifier       auth.Verifier
	// AllowUserWrites lets Clerk users set their own balance (dev mode, trusted setups).
	AllowUserWrites    bool
	RequestTimeout     time.Duration
	CORSAllowedOrigins []string
}

// NewScheme returns a scheme with the built-in kinds and UserCredits.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(creditsv1alpha1.AddToScheme(s))
	return s
}

// ManagerOptions returns the manager options the components rely on: the scheme and a
// cache limited to namespace, without managedFields (the cache never needs them and they
// are most of an object's size).
func ManagerOptions(namespace string) ctrl.Options {
	return ctrl.Options{
		Scheme: NewScheme(),
		Cache: cache.Options{
			DefaultNamespaces: map[string]cache.Config{namespace: {}},
			DefaultTransform:  cache.TransformStripManagedFields(),
		},
	}
}

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
	store := credits.NewStore(credits.StoreOptions{
		Cache:     mgr.GetCache(),
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Namespace: cfg.Namespace,
		Recorder:  mgr.GetEventRecorder("usercredits-api"),
		Log:       log.WithName("store"),
	})
	handler := httpapi.NewHandler(httpapi.Options{
		Verifier:           cfg.Verifier,
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
