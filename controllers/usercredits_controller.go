// Package controllers holds one reconciler per kind of the credits.gitread.dev API.
package controllers

import (
	"context"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/metrics"
)

// UserCreditsReconciler validates balances and owns the status, conditions and Events of
// UserCredits objects. It reads through the manager's cache and writes only the status subresource.
type UserCreditsReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
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

// peers lists the names of the objects in namespace that claim userID, through the field index.
func (r *UserCreditsReconciler) peers(ctx context.Context, namespace, userID string) ([]string, error) {
	var list creditsv1alpha1.UserCreditsList
	if err := r.Client.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{creditsv1alpha1.UserIDField: userID}); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(list.Items))
	for i := range list.Items {
		if list.Items[i].DeletionTimestamp.IsZero() {
			names = append(names, list.Items[i].Name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// requeuePeers maps a change of one object to every other object claiming the same user,
// so that creating or deleting a duplicate re-judges all of them.
func (r *UserCreditsReconciler) requeuePeers(ctx context.Context, obj client.Object) []reconcile.Request {
	uc, ok := obj.(*creditsv1alpha1.UserCredits)
	if !ok {
		return nil
	}
	names, err := r.peers(ctx, uc.Namespace, uc.Spec.UserID)
	if err != nil {
		log.FromContext(ctx).Error(err, "listing peers", "userID", uc.Spec.UserID)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(names))
	for _, name := range names {
		if name != uc.Name {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: uc.Namespace, Name: name}})
		}
	}
	return reqs
}

// SetupWithManager registers the reconciler. The spec.userID index (credits.IndexByUserID)
// must already be registered on mgr.
func (r *UserCreditsReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&creditsv1alpha1.UserCredits{}).
		Watches(&creditsv1alpha1.UserCredits{}, handler.EnqueueRequestsFromMapFunc(r.requeuePeers)).
		Named("usercredits").
		Complete(r)
}
