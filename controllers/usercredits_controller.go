// Package controllers holds one reconciler per kind of the credits.gitread.dev API.
package controllers

import (
	"context"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
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
}

// +kubebuilder:rbac:groups=credits.gitread.dev,namespace=system,resources=usercredits,verbs=get;list;watch
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

	peers, err := r.peers(ctx, obj.Namespace, obj.Spec.UserID)
	if err != nil {
		return ctrl.Result{}, err
	}
	peers = slices.DeleteFunc(peers, func(name string) bool { return name == obj.Name })

	verdict := Validate(obj, peers, metav1.Now())
	if verdict.StatusChanged {
		// The optimistic lock turns a decision made on a stale cache into a conflict;
		// the newer object's watch event brings it back here.
		patch := client.MergeFromWithOptions(obj.DeepCopy(), client.MergeFromWithOptimisticLock{})
		obj.Status = verdict.Status
		if err := r.Client.Status().Patch(ctx, obj, patch); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				return ctrl.Result{}, nil
			}
			return ctrl.Result{}, err
		}
	}
	if e := verdict.Event; e != nil {
		if e.Type == "Warning" {
			metrics.ValidationFailures.WithLabelValues(e.Reason).Inc()
		}
		r.Recorder.Eventf(obj, nil, e.Type, e.Reason, "Validate", "%s", e.Message)
		log.FromContext(ctx).Info("balance validation", "userID", obj.Spec.UserID, "reason", e.Reason, "valid", e.Type == "Normal")
	}
	return ctrl.Result{}, nil
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
	return ctrl.NewControllerManagedBy(mgr).
		For(&creditsv1alpha1.UserCredits{}, builder.WithPredicates(skipSettledOnStart)).
		WatchesRawSource(source.Func(r.rejudgePeers)).
		Named("usercredits").
		Complete(r)
}

// skipSettledOnStart leaves out, among the objects the controller sees as created (at start,
// every object in the namespace), those whose status already accepts their current
// generation: re-validating 100,000 unchanged objects after every restart would cost the
// apiserver and the API's CPU for nothing. An object that is new, changed, or invalid is
// still reconciled, and a new duplicate re-judges its peers through rejudgePeers.
var skipSettledOnStart = predicate.Funcs{CreateFunc: func(e event.CreateEvent) bool {
	uc, ok := e.Object.(*creditsv1alpha1.UserCredits)
	if !ok || uc.Status.ObservedGeneration != uc.Generation {
		return true
	}
	valid := meta.FindStatusCondition(uc.Status.Conditions, creditsv1alpha1.ConditionValid)
	return valid == nil || valid.Status != metav1.ConditionTrue || valid.ObservedGeneration != uc.Generation || uc.Status.Credits != uc.Spec.Credits
}}
