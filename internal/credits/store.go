package credits

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/metrics"
)

// FieldManager names the API's writes in metadata.managedFields, apart from GitOps tools and kubectl.
const FieldManager = "usercredits-api"

// ErrConflictingRecords means the stored records for a user cannot be trusted: two objects
// claim the user, or the one object holds an invalid balance. Nothing is served or changed.
var ErrConflictingRecords = errors.New("conflicting or invalid UserCredits records")

// EventRecorder is the part of the events.k8s.io recorder that credits code uses.
type EventRecorder interface {
	Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// StoreOptions configures a Store.
type StoreOptions struct {
	// Cache is the manager's cache, with the spec.userID index (IndexByUserID).
	Cache client.Reader
	// Client writes to the apiserver.
	Client client.Client
	// APIReader reads from the apiserver, bypassing the cache, after a write conflict.
	APIReader client.Reader
	// Namespace holds the UserCredits objects.
	Namespace string
	// Recorder records Events about records that cannot be trusted.
	Recorder EventRecorder
	// ReadYourWritesTimeout bounds the wait for the cache to show a write.
	ReadYourWritesTimeout time.Duration
	Log                   logr.Logger
}

// +kubebuilder:rbac:groups=credits.gitread.dev,namespace=system,resources=usercredits,verbs=get;list;watch;create;patch

// Store reads balances from the informer cache and writes them to the apiserver. It is the
// only code that reads or writes balances for the API.
type Store struct {
	opts  StoreOptions
	locks *userLocks
	// pending holds userID → pendingWrite for writes acknowledged before the cache showed them.
	pending sync.Map
}

// conflictBackoff spreads retries of a write that lost an optimistic-concurrency race.
var conflictBackoff = wait.Backoff{Steps: 10, Duration: 5 * time.Millisecond, Factor: 2, Jitter: 0.5, Cap: time.Second}

// NewStore returns a Store.
func NewStore(opts StoreOptions) *Store {
	if opts.ReadYourWritesTimeout <= 0 {
		opts.ReadYourWritesTimeout = 2 * time.Second
	}
	return &Store{opts: opts, locks: newUserLocks()}
}

// Balance returns userID's balance, 0 when the user has no record.
func (s *Store) Balance(ctx context.Context, userID string) (int64, error) {
	if obj, ok, err := s.readPending(ctx, userID); ok || err != nil {
		if err != nil {
			return 0, err
		}
		return obj.Spec.Credits, nil
	}
	obj, err := s.find(ctx, userID)
	if err != nil || obj == nil {
		return 0, err
	}
	return obj.Spec.Credits, nil
}

// Apply performs op on userID's balance, creating the user's record when a set or grant
// needs one, and returns once this replica's cache shows the write. Operations on one user
// are serialized within the replica and use optimistic concurrency across replicas.
func (s *Store) Apply(ctx context.Context, userID string, op Operation) (Result, error) {
	res, err := s.apply(ctx, userID, op)
	metrics.CreditOperations.WithLabelValues(string(op.Kind), outcomeLabel(res, err)).Inc()
	return res, err
}

// outcomeLabel names an operation's outcome for the usercredits_operations_total metric.
func outcomeLabel(res Result, err error) string {
	switch {
	case err == nil && res.Replayed:
		return "replayed"
	case err == nil:
		return "applied"
	case errors.Is(err, ErrInsufficientCredits):
		return "insufficient"
	case errors.Is(err, ErrIdempotencyKeyReused):
		return "key_reused"
	case errors.Is(err, ErrBalanceOverflow), errors.Is(err, ErrInvalidOperation):
		return "invalid"
	case errors.Is(err, ErrConflictingRecords):
		return "untrusted_record"
	}
	return "error"
}

func (s *Store) apply(ctx context.Context, userID string, op Operation) (Result, error) {
	unlock, err := s.locks.lock(ctx, userID)
	if err != nil {
		return Result{}, err
	}
	defer unlock()

	obj, err := s.find(ctx, userID)
	if err != nil {
		return Result{}, err
	}
	if obj == nil {
		obj = &creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{Name: ObjectNameForUser(userID), Namespace: s.opts.Namespace}}
		if op.Kind != OpConsume {
			created, err := s.create(ctx, obj, userID, op)
			if created || !apierrors.IsAlreadyExists(err) {
				return s.done(ctx, obj, op, Result{Credits: obj.Spec.Credits}, err)
			}
		}
		// Another replica may have created it, or (for a consume) it may not exist: read it.
	}
	return s.update(ctx, obj, userID, op)
}

// create makes userID's record with op applied to a zero balance.
func (s *Store) create(ctx context.Context, obj *creditsv1alpha1.UserCredits, userID string, op Operation) (bool, error) {
	d, err := decide(0, "", op, time.Now())
	if err != nil {
		return false, err
	}
	obj.Spec = creditsv1alpha1.UserCreditsSpec{UserID: userID, Credits: d.credits}
	if d.ledger != "" {
		obj.Annotations = map[string]string{AppliedRequestsAnnotation: d.ledger}
	}
	if err := s.opts.Client.Create(ctx, obj, client.FieldOwner(FieldManager)); err != nil {
		obj.Spec, obj.Annotations = creditsv1alpha1.UserCreditsSpec{}, nil
		return false, err
	}
	return true, nil
}

// update applies op to obj with optimistic concurrency: each conflict re-reads the object
// from the apiserver and decides again. An obj without resourceVersion is read first, and a
// refusal for insufficient credits is confirmed against the apiserver, never a stale cache.
func (s *Store) update(ctx context.Context, obj *creditsv1alpha1.UserCredits, userID string, op Operation) (Result, error) {
	current := obj.DeepCopy()
	fresh := current.ResourceVersion == ""
	backoff := conflictBackoff
	for {
		if fresh {
			if err := s.opts.APIReader.Get(ctx, client.ObjectKeyFromObject(current), current); err != nil {
				if apierrors.IsNotFound(err) && op.Kind == OpConsume {
					return Result{}, ErrInsufficientCredits // no record: a balance of 0
				}
				return Result{}, err
			}
		}
		if err := s.checkTrusted(current, userID); err != nil {
			return Result{}, err
		}
		d, err := decide(current.Spec.Credits, current.Annotations[AppliedRequestsAnnotation], op, time.Now())
		if errors.Is(err, ErrInsufficientCredits) && !fresh {
			fresh = true
			continue
		}
		if err != nil || !d.write {
			return d.result, err
		}
		patch := client.MergeFromWithOptions(current.DeepCopy(), client.MergeFromWithOptimisticLock{})
		current.Spec.Credits = d.credits
		if d.ledger != "" {
			if current.Annotations == nil {
				current.Annotations = map[string]string{}
			}
			current.Annotations[AppliedRequestsAnnotation] = d.ledger
		}
		err = s.opts.Client.Patch(ctx, current, patch, client.FieldOwner(FieldManager))
		if !apierrors.IsConflict(err) || backoff.Steps <= 1 {
			return s.done(ctx, current, op, d.result, err)
		}
		metrics.ConflictRetries.Inc()
		s.opts.Log.V(1).Info("write conflict, retrying", "userID", userID, "op", op.Kind)
		select {
		case <-time.After(backoff.Step()):
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
		fresh = true
	}
}

// done finishes a successful write: wait for the cache, record the Event, log.
func (s *Store) done(ctx context.Context, written *creditsv1alpha1.UserCredits, op Operation, result Result, err error) (Result, error) {
	if err != nil {
		return Result{}, err
	}
	if s.awaitCache(ctx, written) {
		// The cache shows this write, so any earlier pending one is shown too: without this,
		// entries of users who are written but never read again would pile up.
		s.pending.Delete(written.Spec.UserID)
	} else {
		s.pending.Store(written.Spec.UserID, pendingWrite{key: client.ObjectKeyFromObject(written), resourceVersion: written.ResourceVersion})
	}
	s.opts.Log.Info("balance changed", "userID", written.Spec.UserID, "op", op.Kind, "amount", op.Amount, "credits", result.Credits)
	if s.opts.Recorder != nil && op.Kind != OpConsume { // consumes are too frequent to be Events
		s.opts.Recorder.Eventf(written, nil, "Normal", eventReasons[op.Kind], "UpdateBalance",
			"%s of %d credits through the API; balance is now %d", op.Kind, op.Amount, result.Credits)
	}
	return result, nil
}

var eventReasons = map[OpKind]string{OpSet: "CreditsSet", OpGrant: "CreditsGranted"}

// find returns userID's one trusted record from the cache, nil when there is none.
// The returned object is shared with the cache and must not be modified.
func (s *Store) find(ctx context.Context, userID string) (*creditsv1alpha1.UserCredits, error) {
	var list creditsv1alpha1.UserCreditsList
	if err := s.opts.Cache.List(ctx, &list, client.InNamespace(s.opts.Namespace),
		client.MatchingFields{creditsv1alpha1.UserIDField: userID}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	switch {
	case len(list.Items) == 0:
		return nil, nil
	case len(list.Items) > 1:
		for i := range list.Items {
			_ = s.untrusted(&list.Items[i], userID)
		}
		return nil, fmt.Errorf("%w: %d objects claim user %q", ErrConflictingRecords, len(list.Items), userID)
	}
	if err := s.checkTrusted(&list.Items[0], userID); err != nil {
		return nil, err
	}
	return &list.Items[0], nil
}

// checkTrusted refuses a record that is not userID's or holds an invalid balance.
func (s *Store) checkTrusted(obj *creditsv1alpha1.UserCredits, userID string) error {
	if obj.Spec.UserID != userID || obj.Spec.Credits < 0 {
		return s.untrusted(obj, userID)
	}
	return nil
}

// untrusted reports a record the API refuses to serve or change.
func (s *Store) untrusted(obj *creditsv1alpha1.UserCredits, userID string) error {
	err := fmt.Errorf("%w: object %s/%s (user %q, credits %d)", ErrConflictingRecords, obj.Namespace, obj.Name, obj.Spec.UserID, obj.Spec.Credits)
	s.opts.Log.Error(err, "refusing to serve or change a balance", "object", obj.Name, "userID", userID)
	if s.opts.Recorder != nil {
		s.opts.Recorder.Eventf(obj, nil, "Warning", "UntrustedRecord", "ServeBalance",
			"the credits API refused to serve or change user %q: records conflict or hold an invalid balance", userID)
	}
	return err
}

// pendingWrite is a write this replica acknowledged before its cache showed it.
type pendingWrite struct {
	key             client.ObjectKey
	resourceVersion string
}

// readPending keeps read-your-writes when the cache lags (after an apiserver outage the
// informer re-lists with backoff): a user with a write the cache has not shown yet is read
// from the apiserver until it has. ok is false when the cache can answer.
func (s *Store) readPending(ctx context.Context, userID string) (*creditsv1alpha1.UserCredits, bool, error) {
	v, ok := s.pending.Load(userID)
	if !ok {
		return nil, false, nil
	}
	pw := v.(pendingWrite)
	obj := &creditsv1alpha1.UserCredits{}
	if err := s.opts.Cache.Get(ctx, pw.key, obj); err == nil && resourceVersionAtLeast(obj.ResourceVersion, pw.resourceVersion) {
		s.pending.CompareAndDelete(userID, v)
		return nil, false, nil
	}
	if err := s.opts.APIReader.Get(ctx, pw.key, obj); err != nil {
		return nil, true, err
	}
	if err := s.checkTrusted(obj, userID); err != nil {
		return nil, true, err
	}
	return obj, true, nil
}

// awaitCache waits, within ReadYourWritesTimeout and ctx, until the cache holds obj at its
// written resourceVersion or later, so that a client's next read on this replica sees its
// write, and reports whether it did. The write is durable either way.
func (s *Store) awaitCache(ctx context.Context, written *creditsv1alpha1.UserCredits) bool {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ReadYourWritesTimeout)
	defer cancel()
	key := client.ObjectKeyFromObject(written)
	cached := &creditsv1alpha1.UserCredits{}
	err := wait.PollUntilContextCancel(ctx, 500*time.Microsecond, true, func(ctx context.Context) (bool, error) {
		if err := s.opts.Cache.Get(ctx, key, cached); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return resourceVersionAtLeast(cached.ResourceVersion, written.ResourceVersion), nil
	})
	if err != nil {
		s.opts.Log.Info("cache did not show a write in time; reading this user from the apiserver until it does",
			"object", key.Name, "resourceVersion", written.ResourceVersion, "error", err.Error())
		return false
	}
	return true
}

// resourceVersionAtLeast compares resourceVersions as the etcd revisions they are; an
// unparsable one only matches itself.
func resourceVersionAtLeast(have, want string) bool {
	h, errH := strconv.ParseUint(have, 10, 64)
	w, errW := strconv.ParseUint(want, 10, 64)
	if errH != nil || errW != nil {
		return have == want
	}
	return h >= w
}
