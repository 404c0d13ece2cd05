package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

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
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/credits"
)

// CreditGrantReconciler applies each CreditGrant once, as a lot of its user's (source
// gitops, reference the CreditGrant's name), and records the outcome in its status. Exactly
// once rests on the grant's Idempotency-Key, which is derived from the CreditGrant's name
// and kept in the user's record in the same write as the lot: a re-sync, a status write
// lost to a crash, a second replica, or a prune and re-creation under the same name within
// the grant-key retention all replay the first grant instead of granting again. Deleting a
// CreditGrant does nothing to the credits: there is no finalizer.
type CreditGrantReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	// Grants applies the grants (credits.Store).
	Grants Granter
	// Users tells of every change to the UserCredits objects (credits.Index): a grant
	// waiting on its user (a record that cannot be trusted, too many lots, the largest
	// balance) is tried again when the user's objects change.
	Users UserObserver

	mu sync.Mutex
	// waiting are the grants that failed in a way a change of their user's objects can
	// undo, by user ID, with when each was last tried; users is each one's user ID.
	waiting map[string]map[types.NamespacedName]time.Time
	users   map[types.NamespacedName]string
}

// Granter applies an operation to a user's account, as every balance change goes: through
// the credits store.
type Granter interface {
	Apply(ctx context.Context, user account.UserID, op account.Operation) (account.Result, error)
}

// UserObserver calls an observer with each UserCredits object it takes in or lets go.
type UserObserver interface {
	Observe(f credits.Observer)
}

// GrantKey is the Idempotency-Key of CreditGrant name's grant. It is the name's, not the
// object's UID: a GitOps tool that prunes a CreditGrant and creates it again under the same
// name (within the grant-key retention) replays the first grant.
func GrantKey(name string) string { return "creditgrant:" + name }

// Retries of a grant that failed in a way time or its user's objects can undo: after as
// long as it has been failing, between retryMin and retryMax (and at once, but at most
// every retryMin, when the user's objects change).
const (
	retryMin = 5 * time.Second
	retryMax = 10 * time.Minute
)

// finalReasons are the outcomes a grant is never tried again after: its spec is immutable,
// so trying again could only change the outcome by surprise (a name reused with other
// terms would be granted once the first grant's key is forgotten).
var finalReasons = map[string]bool{
	creditsv1alpha1.ReasonExpired:    true,
	creditsv1alpha1.ReasonNameReused: true,
	creditsv1alpha1.ReasonInvalid:    true,
}

// +kubebuilder:rbac:groups=credits.gitread.dev,namespace=system,resources=creditgrants,verbs=get;list;watch
// +kubebuilder:rbac:groups=credits.gitread.dev,namespace=system,resources=creditgrants/status,verbs=patch
// +kubebuilder:rbac:groups=events.k8s.io,namespace=system,resources=events,verbs=create;patch

// Reconcile applies one CreditGrant unless it was applied (or refused for good) already.
func (r *CreditGrantReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	cg := &creditsv1alpha1.CreditGrant{}
	if err := r.Client.Get(ctx, req.NamespacedName, cg); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !cg.DeletionTimestamp.IsZero() || settled(cg) {
		r.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	now := time.Now()
	r.tried(req.NamespacedName, cg.Spec.UserID, now)
	var res account.Result
	user, err := account.ParseUserID(cg.Spec.UserID)
	if err == nil {
		res, err = r.Grants.Apply(ctx, user, GrantOperation(cg))
	}
	out := judge(cg, res, err, now)
	if out.status == metav1.ConditionTrue || finalReasons[out.reason] {
		r.forget(req.NamespacedName)
	}
	logger := log.FromContext(ctx).WithValues("userID", cg.Spec.UserID, "reason", out.reason)
	switch {
	case out.status == metav1.ConditionTrue:
		logger.Info("CreditGrant applied", "lot", res.LotID, "credits", cg.Spec.Credits, "replayed", res.Replayed)
	case out.reason == creditsv1alpha1.ReasonRetrying:
		logger.Error(err, "CreditGrant not applied yet; retrying")
	default:
		logger.Info("CreditGrant not applied", "error", err.Error())
	}

	if err := r.record(ctx, cg, out, res, now); err != nil {
		return ctrl.Result{}, err // its grant replays on the next attempt
	}
	if out.status == metav1.ConditionTrue || finalReasons[out.reason] {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: retryAfter(cg, now)}, nil
}

// GrantOperation is the grant cg asks for.
func GrantOperation(cg *creditsv1alpha1.CreditGrant) account.Operation {
	terms := account.LotTerms{Priority: cg.Spec.Priority, Source: account.SourceGitOps, Reference: cg.Name, Reason: cg.Spec.Reason}
	if cg.Spec.ExpiresAt != nil {
		terms.ExpiresAt = cg.Spec.ExpiresAt.Time
	}
	return account.Operation{Kind: account.OpGrant, Amount: cg.Spec.Credits, IdempotencyKey: GrantKey(cg.Name), Terms: terms}
}

// outcome is what a grant came to: the Applied condition's status, reason and message.
type outcome struct {
	status          metav1.ConditionStatus
	reason, message string
}

// judge maps a grant's answer to its outcome.
func judge(cg *creditsv1alpha1.CreditGrant, res account.Result, err error, now time.Time) outcome {
	user, credits := cg.Spec.UserID, account.CountCredits(cg.Spec.Credits)
	failed := func(reason, format string, args ...any) outcome {
		return outcome{status: metav1.ConditionFalse, reason: reason, message: fmt.Sprintf(format, args...)}
	}
	switch {
	case err == nil && res.Replayed:
		return outcome{metav1.ConditionTrue, creditsv1alpha1.ReasonGranted, fmt.Sprintf(
			"%s were granted to user %q as lot %s by a CreditGrant of this name and terms before: nothing granted again", credits, user, res.LotID)}
	case err == nil:
		return outcome{metav1.ConditionTrue, creditsv1alpha1.ReasonGranted, fmt.Sprintf("%s granted to user %q: lot %s", credits, user, res.LotID)}
	case errors.Is(err, account.ErrInvalidUserID):
		return failed(creditsv1alpha1.ReasonInvalid, "spec.userID %q is not a valid user ID: nothing granted", user)
	case errors.Is(err, account.ErrInvalidOperation) && cg.Spec.ExpiresAt != nil && !now.Before(cg.Spec.ExpiresAt.Time):
		return failed(creditsv1alpha1.ReasonExpired, "spec.expiresAt (%s) had passed before the grant could be applied: nothing granted",
			cg.Spec.ExpiresAt.UTC().Format(time.RFC3339))
	case errors.Is(err, account.ErrInvalidOperation):
		return failed(creditsv1alpha1.ReasonInvalid, "the grant cannot be applied as written (%v): nothing granted", err)
	case errors.Is(err, account.ErrIdempotencyKeyReused):
		return failed(creditsv1alpha1.ReasonNameReused, "a grant under this name (Idempotency-Key %s) was applied to user %q with other terms: "+
			"nothing granted; a new grant needs a new name", GrantKey(cg.Name), user)
	case errors.Is(err, account.ErrUntrusted):
		return failed(creditsv1alpha1.ReasonUserUntrusted, "user %q's record cannot be trusted (%v): applied once it is fixed", user, err)
	case errors.Is(err, account.ErrTooManyLots):
		return failed(creditsv1alpha1.ReasonTooManyLots, "user %q has %d lots with credits left: applied once some are spent, expire or are voided",
			user, account.MaxLots)
	case errors.Is(err, account.ErrBalanceOverflow):
		return failed(creditsv1alpha1.ReasonOverLimit, "%s would take user %q past the largest balance: applied once they have spent enough", credits, user)
	}
	return failed(creditsv1alpha1.ReasonRetrying, "the grant could not be written yet (%v): retrying", err)
}

// record writes out into cg's status, with the optimistic lock, and, when the condition's
// status or reason changed, records an Event on cg. A conflict or a deleted object is not
// an error: the newer object's watch event brings it back, and its grant replays.
func (r *CreditGrantReconciler) record(ctx context.Context, cg *creditsv1alpha1.CreditGrant, out outcome, res account.Result, now time.Time) error {
	patch := client.MergeFromWithOptions(cg.DeepCopy(), client.MergeFromWithOptimisticLock{})
	before := meta.FindStatusCondition(cg.Status.Conditions, creditsv1alpha1.ConditionApplied)
	changed := before == nil || before.Status != out.status || before.Reason != out.reason
	if !changed && before.Message == out.message {
		return nil
	}
	meta.SetStatusCondition(&cg.Status.Conditions, metav1.Condition{Type: creditsv1alpha1.ConditionApplied, Status: out.status,
		Reason: out.reason, Message: out.message, ObservedGeneration: cg.Generation})
	cg.Status.ObservedGeneration = cg.Generation
	if out.status == metav1.ConditionTrue {
		cg.Status.LotID = res.LotID
		cg.Status.AppliedAt = &metav1.Time{Time: now.Truncate(time.Second)}
	}
	if err := r.Client.Status().Patch(ctx, cg, patch); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("writing the status of CreditGrant %s: %w", cg.Name, err)
	}
	if !changed {
		return nil // the same outcome, told once
	}
	switch {
	case out.status == metav1.ConditionTrue && res.Replayed:
		r.Recorder.Eventf(cg, nil, "Normal", "AlreadyGranted", "Grant", "%s", out.message)
	case out.status == metav1.ConditionTrue:
		r.Recorder.Eventf(cg, nil, "Normal", "CreditsGranted", "Grant", "%s", out.message)
	default:
		r.Recorder.Eventf(cg, nil, "Warning", out.reason, "Grant", "%s", out.message)
	}
	return nil
}

// settled reports whether cg was applied, or refused for good.
func settled(cg *creditsv1alpha1.CreditGrant) bool {
	c := meta.FindStatusCondition(cg.Status.Conditions, creditsv1alpha1.ConditionApplied)
	switch {
	case c == nil:
		return false
	case c.Status == metav1.ConditionTrue:
		return cg.Status.LotID != ""
	}
	return finalReasons[c.Reason]
}

// retryAfter is when a grant that failed is tried again: after as long as it has been
// failing (a doubling backoff that survives restarts), within [retryMin, retryMax].
func retryAfter(cg *creditsv1alpha1.CreditGrant, now time.Time) time.Duration {
	wait := retryMin
	if c := meta.FindStatusCondition(cg.Status.Conditions, creditsv1alpha1.ConditionApplied); c != nil && c.Status == metav1.ConditionFalse {
		wait = max(wait, now.Sub(c.LastTransitionTime.Time))
	}
	return min(wait, retryMax)
}

// tried notes that the grant key of user was tried at now: until it is applied or
// refused for good, a change of the user's objects tries it again.
func (r *CreditGrantReconciler) tried(key types.NamespacedName, user string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.users[key]; ok && old != user {
		delete(r.waiting[old], key)
	}
	if r.waiting[user] == nil {
		r.waiting[user] = map[types.NamespacedName]time.Time{}
	}
	r.waiting[user][key], r.users[key] = now, user
}

// forget drops a grant that no longer waits on its user.
func (r *CreditGrantReconciler) forget(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	user, ok := r.users[key]
	if !ok {
		return
	}
	delete(r.users, key)
	if delete(r.waiting[user], key); len(r.waiting[user]) == 0 {
		delete(r.waiting, user)
	}
}

// retryOnUserChange is a source of reconcile requests: when a user's objects change (a
// duplicate deleted, credits spent, lots expired or voided), the grants waiting on that
// user are tried again, each at most every retryMin. It is driven by the store's index, so
// the retry never reads an index that has not yet seen the change.
func (r *CreditGrantReconciler) retryOnUserChange(ctx context.Context, queue workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	r.Users.Observe(func(obj *creditsv1alpha1.UserCredits, _, _ bool) {
		if ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		now := time.Now()
		for key, tried := range r.waiting[obj.Spec.UserID] {
			queue.AddAfter(reconcile.Request{NamespacedName: key}, max(0, tried.Add(retryMin).Sub(now)))
		}
	})
	return nil
}

// SetupWithManager registers the reconciler.
func (r *CreditGrantReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.waiting, r.users = map[string]map[types.NamespacedName]time.Time{}, map[types.NamespacedName]string{}
	// A settled grant is never applied again: its events (every one at start, and the
	// controller's own status writes) are left out. Deletions still come through.
	unsettled := func(obj client.Object) bool {
		cg, ok := obj.(*creditsv1alpha1.CreditGrant)
		return !ok || !settled(cg)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&creditsv1alpha1.CreditGrant{}, builder.WithPredicates(predicate.Funcs{
			CreateFunc: func(e event.CreateEvent) bool { return unsettled(e.Object) },
			UpdateFunc: func(e event.UpdateEvent) bool { return unsettled(e.ObjectNew) },
		})).
		WatchesRawSource(source.Func(r.retryOnUserChange)).
		Named("creditgrant").
		Complete(r)
}
