package operator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/gitread/usercredits-operator/internal/operator/options"
)

// Run assembles the operator for o on the cluster o names and runs it until ctx ends: what
// the manager binary does.
func Run(ctx context.Context, o *options.Options) error {
	cfg, err := o.RESTConfig()
	if err != nil {
		return err
	}
	op, err := New(ctx, cfg, o)
	if err != nil {
		return err
	}
	e := op.Effective()
	ctrl.Log.WithName("setup").Info("starting the operator", "namespace", e.Namespace, "api", op.APIAddress(), "https", e.API.CertDir != "",
		"leaderElection", e.Manager.LeaderElect, "stripeWebhook", e.Stripe.Enabled(), "lowBalanceThreshold", e.Controller.LowBalanceThreshold,
		"reservationTTL", e.API.DefaultReservationTTL.String(), "grantKeyRetention", e.Accounts.GrantKeyRetention.String())
	return explainBindError(op.Start(ctx), o)
}

// Effective is the configuration the running operator's parts hold, read back from each of
// them (never from the Options it was built from): a setting that did not reach the part
// that uses it shows here as its zero value. Kubeconfig and Log are consumed before the
// operator is built (Options.RESTConfig, the logger) and are left empty.
func (op *Operator) Effective() options.Options {
	var e options.Options
	m := op.managerOptions
	e.Namespace = op.store.Namespace()
	e.Manager = options.ManagerSettings{MetricsBindAddress: m.Metrics.BindAddress, MetricsSecure: m.Metrics.SecureServing,
		HealthProbeBindAddress: m.HealthProbeBindAddress, PprofBindAddress: m.PprofBindAddress, LeaderElect: m.LeaderElection}
	e.Auth = op.authenticator.Settings()
	e.API = op.handler.Settings()
	e.API.BindAddress, e.API.CertDir = op.server.BindAddress, op.server.CertDir
	e.Accounts = op.store.Settings()
	e.Controller = op.reconciler.Settings
	e.Stripe = op.webhook.Settings
	return e
}

// explainBindError names the flag to change when an address the operator listens on is
// taken; the API's own listener says so itself (httpapi.ErrAddressInUse).
func explainBindError(err error, o *options.Options) error {
	if err == nil || !(errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")) {
		return err
	}
	for _, a := range []struct{ flag, addr string }{
		{"--health-probe-bind-address", o.Manager.HealthProbeBindAddress},
		{"--metrics-bind-address", o.Manager.MetricsBindAddress},
		{"--pprof-bind-address", o.Manager.PprofBindAddress},
	} {
		if strings.Contains(err.Error(), "listen tcp "+a.addr+":") || strings.Contains(err.Error(), "on "+a.addr+":") {
			return fmt.Errorf("%w; %s is taken: choose another with %s (make run RUN_ARGS=%s=127.0.0.1:0 picks a free port)", err, a.addr, a.flag, a.flag)
		}
	}
	return fmt.Errorf("%w; choose free addresses with --api-bind-address, --health-probe-bind-address and --metrics-bind-address (make run RUN_ARGS=...)", err)
}
