// Package controllers holds one reconciler per kind of the credits.gitread.dev API.
package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/credits"
	"github.com/gitread/usercredits-operator/internal/metrics"
)

// UserCreditsReconciler validates balances and owns the status, conditions and Events of
// UserCredits objects. It reads through the manager's cache and writes only the status subresource.
type UserCreditsReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	// Users finds the objects that claim a user (credits.Index on the manager's cache).
	Users *credits.Index
	// Holds returns expired holds to their user's balance (credits.Store).
	Holds HoldExpirer
	// Settings are the controller's flags (the low-balance threshold).
	Settings Settings
}

// HoldExpirer returns a hold whose time is up to the balance, as every balance change goes:
// through the credits store.
type HoldExpirer interface {
	Expire(ctx context.Context, user account.UserID, holdID string) error
	// ExpireLots removes what is left of the lots whose time is up.
	ExpireLots(ctx context.Context, user account.UserID) error
}

// +kubebuilder:rbac:groups=credits.gitread.dev,namespace=system,resources=usercredits,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=credits.gitread.dev,namespace=system,resources=usercredits/status,verbs=patch
// +kubebuilder:rbac:groups=events.k8s.io,namespace=system,resources=events,verbs=create;patch

// Reconcile brings one object's status in line with its spec and its namespace peers.
func (r *UserCreditsReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	obj := &creditsv1alpha1.UserCredits{}
	if err := r.Client.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !obj.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}

	if relabelled, err := r.nameLabel(ctx, obj); relabelled || err != nil {
		return ctrl.Result{}, err // the relabelled object comes back through the watch
	}
	acct, decodeErr := account.Decode(obj)
	if decodeErr == nil { // a record that cannot be trusted is left as is: the Valid condition says why
		if expired, err := r.expireHolds(ctx, acct); expired || err != nil {
			return ctrl.Result{}, err // the written object comes back through the watch
		}
	}

	peers, err := r.peers(ctx, obj.Namespace, obj.Spec.UserID)
	if err != nil {
		return ctrl.Result{}, err
	}
	peers = slices.DeleteFunc(peers, func(name string) bool { return name == obj.Name })

	verdict := Validate(obj, peers, metav1.Now(), r.Settings.LowBalanceThreshold, RecordOf(acct, decodeErr))
	if verdict.StatusChanged {
		patch, err := statusPatch(obj.ResourceVersion, verdict.Status)
		if err != nil {
			return ctrl.Result{}, err
		}
		if err := r.Client.Status().Patch(ctx, obj, patch); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				return ctrl.Result{}, nil
			}
			return ctrl.Result{}, err
		}
	}
	for _, e := range verdict.Events {
		if validationFailures[e.Reason] && e.Type == "Warning" {
			metrics.ValidationFailures.WithLabelValues(e.Reason).Inc()
		}
		r.Recorder.Eventf(obj, nil, e.Type, e.Reason, "Validate", "%s", e.Message)
		log.FromContext(ctx).Info("balance validation", "userID", obj.Spec.UserID, "reason", e.Reason, "type", e.Type)
	}
	// Come back when the next hold or lot is due, not by polling every object.
	next := acct.NextExpiry()
	if lot, _ := acct.NextLotExpiry(); !lot.IsZero() && (next.IsZero() || lot.Before(next)) {
		next = lot
	}
	if !next.IsZero() {
		return ctrl.Result{RequeueAfter: time.Until(next) + expiryGrace}, nil
	}
	return ctrl.Result{}, nil
}

// statusPatch is the JSON patch that sets an object's whole status to status if the object
// is still at resourceVersion: a resourceVersion in the patched object is the apiserver's
// precondition (409 Conflict once it moved), so a decision made on a stale cache is never
// written; the newer object's watch event brings it back here. Only the status is encoded
// (a merge patch computed by diffing encodes the whole object twice and decodes both),
// which keeps the controller's CPU for the apiserver when it writes thousands at start.
func statusPatch(resourceVersion string, status creditsv1alpha1.UserCreditsStatus) (client.Patch, error) {
	data, err := json.Marshal([]account.PatchOp{
		{Op: "replace", Path: "/metadata/resourceVersion", Value: resourceVersion},
		{Op: "add", Path: "/status", Value: status},
	})
	if err != nil {
		return nil, fmt.Errorf("encoding the status: %w", err)
	}
	return client.RawPatch(types.JSONPatchType, data), nil
}

// validationFailures are the reasons of Valid=False: each Warning Event of one counts in
// usercredits_validation_failures_total.
var validationFailures = map[string]bool{
	creditsv1alpha1.ReasonNegativeBalance: true,
	creditsv1alpha1.ReasonDuplicateUserID: true,
	creditsv1alpha1.ReasonInvalidUserID:   true,
	creditsv1alpha1.ReasonUntrustedRecord: true,
}

// nameLabel puts account.NameLabel on obj when its name is the one the API gives its user,
// and takes it off when not (a copied label must never hide an object from a warming
// replica's list of the others), and reports whether it changed anything. Objects the API
// creates carry it already: this labels those created by an earlier version, or by hand.
func (r *UserCreditsReconciler) nameLabel(ctx context.Context, obj *creditsv1alpha1.UserCredits) (bool, error) {
	want, has := account.NameLabelWanted(obj)
	if want == has {
		return false, nil
	}
	patch := client.MergeFrom(obj.DeepCopy())
	if want {
		if obj.Labels == nil {
			obj.Labels = map[string]string{}
		}
		obj.Labels[account.NameLabel] = account.NameDerived
	} else {
		delete(obj.Labels, account.NameLabel)
	}
	if err := r.Client.Patch(ctx, obj, patch); err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("labelling %s: %w", obj.Name, err)
	}
	return true, nil
}

// expiryGrace is how long after a hold is due the controller looks: the clock ticks on.
const expiryGrace = 100 * time.Millisecond

// expireHolds returns the account's holds whose time is up to the balance, and reports
// whether it changed anything. A user whose records cannot be trusted is left as is (the
// store has reported it, and the Valid condition says why), with an Error log line: the
// credits that should have been removed or returned are not.
func (r *UserCreditsReconciler) expireHolds(ctx context.Context, acct account.Account) (bool, error) {
	now, expired := time.Now(), false
	untrusted := func(err error, what string) {
		log.FromContext(ctx).Error(err, "cannot expire what is due: the user's record cannot be trusted", "userID", acct.UserID, "due", what)
	}
	if lot, _ := acct.NextLotExpiry(); !lot.IsZero() && !now.Before(lot) {
		err := r.Holds.ExpireLots(ctx, acct.UserID)
		switch {
		case errors.Is(err, account.ErrUntrusted):
			untrusted(err, "lots") // nothing written: validate below (a person's fix comes back through the watch)
		case err != nil:
			return false, fmt.Errorf("expiring lots: %w", err)
		default:
			expired = true
		}
	}
	for _, h := range acct.Due(now) {
		err := r.Holds.Expire(ctx, acct.UserID, h.ID)
		if errors.Is(err, account.ErrUntrusted) {
			untrusted(err, "hold "+h.ID)
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("expiring hold %s: %w", h.ID, err)
		}
		expired = true
	}
	return expired, nil
}

// peers lists the names of the objects that claim userID.
func (r *UserCreditsReconciler) peers(_ context.Context, _, userID string) ([]string, error) {
	return r.Users.Names(userID), nil
}

// rejudgePeers is a source of reconcile requests: each time the index takes in or lets go
// of an object whose user is or was claimed by several objects, every object claiming that
// user is judged again. It is driven by the index itself, so a judgement never reads an
// index that has not yet seen the change that caused it.
func (r *UserCreditsReconciler) rejudgePeers(ctx context.Context, queue workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	r.Users.Observe(func(obj *creditsv1alpha1.UserCredits, deleted, shared bool) {
		if !shared || ctx.Err() != nil {
			return
		}
		for _, name := range r.Users.Names(obj.Spec.UserID) {
			queue.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: obj.Namespace, Name: name}})
		}
		if !deleted {
			queue.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name}})
		}
	})
	return nil
}

// SetupWithManager registers the reconciler. r.Users must be registered on mgr's cache.
func (r *UserCreditsReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := r.Settings.Validate(); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&creditsv1alpha1.UserCredits{}, builder.WithPredicates(r.skipSettledOnStart())).
		WatchesRawSource(source.Func(r.rejudgePeers)).
		Named("usercredits").
		WithOptions(controller.Options{MaxConcurrentReconciles: int(r.Settings.Workers)}).
		Complete(r)
}

// skipSettledOnStart leaves out, among the objects the controller sees as created (at start,
// every object in the namespace), those that are settled: re-validating 100,000 unchanged
// objects after every restart would cost the apiserver and the API's CPU for nothing.
func (r *UserCreditsReconciler) skipSettledOnStart() predicate.Funcs {
	return predicate.Funcs{CreateFunc: func(e event.CreateEvent) bool {
		uc, ok := e.Object.(*creditsv1alpha1.UserCredits)
		return !ok || !r.settled(uc)
	}}
}

// settled reports whether validating obj would change nothing and it holds nothing that
// could expire. An object that is new, changed, invalid, held, damaged or untrusted and not
// yet reported so, or judged under another low-balance threshold, is reconciled; a new
// duplicate re-judges its peers through rejudgePeers. It judges the record Reconcile judges
// (account.Decode, not the balance alone): a part edited by hand while no replica ran is
// seen here or never, since nothing else about the object may change for months.
func (r *UserCreditsReconciler) settled(obj *creditsv1alpha1.UserCredits) bool {
	acct, decodeErr := account.Decode(obj)
	if want, has := account.NameLabelWanted(obj); want != has || len(acct.Holds) > 0 {
		return false
	}
	if next, _ := acct.NextLotExpiry(); !next.IsZero() {
		return false
	}
	return !Validate(obj, nil, metav1.Now(), r.Settings.LowBalanceThreshold, RecordOf(acct, decodeErr)).StatusChanged
}
