package credits

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/expiring"
	"github.com/gitread/usercredits-operator/internal/metrics"
)

// FieldManager names the API's writes in metadata.managedFields, apart from GitOps tools and kubectl.
const FieldManager = "usercredits-api"

// ErrUntrustedRecord means the stored records for a user cannot be trusted: two objects
// claim the user, or the one object holds an invalid balance. Nothing is served or changed.
var ErrUntrustedRecord = errors.New("untrusted UserCredits record")

// StoreOptions configures a Store.
type StoreOptions struct {
	// Objects finds each user's objects in the informer cache (an *Index registered on the
	// manager's cache).
	Objects Objects
	// Client writes to the apiserver.
	Client client.Client
	// APIReader reads from the apiserver, bypassing the cache, after a write conflict.
	APIReader client.Reader
	// Namespace holds the UserCredits objects.
	Namespace string
	// Recorder records Events about records that cannot be trusted.
	Recorder events.EventRecorder
	// ReadYourWritesTimeout bounds the wait for the cache to show a write.
	ReadYourWritesTimeout time.Duration
	// ResolveTimeout bounds finding out whether a keyed write whose answer was lost was
	// applied (default 1s); it is taken from the request's own time.
	ResolveTimeout time.Duration
	// GrantKeyRetention is how long grant idempotency keys are honoured (default 30 days).
	GrantKeyRetention time.Duration
	Log               logr.Logger
}

// +kubebuilder:rbac:groups=credits.gitread.dev,namespace=system,resources=usercredits,verbs=get;list;watch;create;patch

// Store reads balances from the informer cache and writes them to the apiserver. It is the
// only code that reads or writes balances for the API.
type Store struct {
	opts  StoreOptions
	locks *userLocks
	// pending holds userID → pendingWrite for writes acknowledged before the cache showed them.
	pending sync.Map
	// refusals remembers, per user, that a refusal was confirmed within refusalConfirmInterval.
	refusals *expiring.Cache[string, struct{}]
	// shown wakes writes waiting for the cache to show them.
	shown *shownWaiters
}

// maxRememberedRefusals bounds the refusal memory; a user dropped from it only costs one
// more confirmation.
const maxRememberedRefusals = 100_000

// conflictBackoff spreads retries of a write that lost an optimistic-concurrency race.
var conflictBackoff = wait.Backoff{Steps: 10, Duration: 5 * time.Millisecond, Factor: 2, Jitter: 0.5, Cap: time.Second}

// NewStore returns a Store.
func NewStore(opts StoreOptions) *Store {
	if opts.ReadYourWritesTimeout <= 0 {
		opts.ReadYourWritesTimeout = 2 * time.Second
	}
	if opts.ResolveTimeout <= 0 {
		opts.ResolveTimeout = time.Second
	}
	if opts.GrantKeyRetention <= 0 {
		opts.GrantKeyRetention = DefaultGrantKeyRetention
	}
	s := &Store{opts: opts, locks: newUserLocks(), refusals: expiring.NewCache[string, struct{}](maxRememberedRefusals), shown: newShownWaiters()}
	opts.Objects.Observe(s.shown.observe)
	return s
}

// Balance returns userID's balance, 0 when the user has no record.
func (s *Store) Balance(ctx context.Context, userID string) (int64, error) {
	if !ValidUserID(userID) {
		return 0, ErrInvalidUserID
	}
	if obj, ok, err := s.readPending(ctx, userID); ok || err != nil {
		if err != nil {
			return 0, err
		}
		return obj.Spec.Credits, nil
	}
	obj, err := s.find(userID)
	if err != nil || obj == nil {
		return 0, err
	}
	return obj.Spec.Credits, nil
}

// Apply performs op on userID's balance, creating the user's record when a set or grant
// needs one, and returns once this replica's cache shows the write. Operations on one user
// are serialized within the replica and use optimistic concurrency across replicas.
func (s *Store) Apply(ctx context.Context, userID string, op Operation) (Result, error) {
	if !ValidUserID(userID) {
		return Result{}, ErrInvalidUserID
	}
	if op.Kind == OpReserve && op.ReservationID == "" {
		op.ReservationID = newReservationID() // before any attempt, so a retry keeps it
	}
	unlock, err := s.locks.lock(ctx, userID)
	if err != nil {
		return Result{}, err
	}
	defer unlock()

	attemptCtx, cancelAttempt := s.attemptContext(ctx, op)
	defer cancelAttempt()
	res, err := s.applyLocked(attemptCtx, userID, op, false)
	var unknown *unknownOutcomeError
	if !errors.As(err, &unknown) || op.IdempotencyKey == "" {
		return res, err
	}
	// The write was sent but its answer was lost (deadline, broken connection, apiserver
	// timeout): it may or may not have been applied. The key decides: applying the
	// operation again from a fresh read either finds the key recorded (it was applied) or
	// applies it now, under the resourceVersion precondition that makes a late arrival of
	// the first write fail. Either way it happens exactly once. The request's own deadline
	// has usually passed, so the resolution gets its own.
	s.opts.Log.Info("write outcome unknown; resolving it by its idempotency key", "userID", userID, "op", op.Kind, "error", unknown.Error())
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.ResolveTimeout)
	defer cancel()
	resolved, rerr := s.applyLocked(rctx, userID, op, true)
	if rerr != nil {
		return Result{}, err
	}
	resolved.Replayed = false // this request's first and only answer
	return resolved, nil
}

// attemptContext bounds the first attempt of a keyed operation so that, when its outcome
// turns out unknown, ResolveTimeout of the request's time is left to resolve it: the
// request as a whole still ends by its deadline.
func (s *Store) attemptContext(ctx context.Context, op Operation) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if op.IdempotencyKey == "" || !ok || time.Until(deadline) < 2*s.opts.ResolveTimeout {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, deadline.Add(-s.opts.ResolveTimeout))
}

// applyLocked decides op and writes it under userID's lock. The decision starts from the
// cache unless resolving an unknown outcome; every retry reads the object from the
// apiserver. Decisions that write are confirmed by the resourceVersion precondition of the
// write itself; a refusal for insufficient credits is confirmed by a read from the apiserver.
func (s *Store) applyLocked(ctx context.Context, userID string, op Operation, resolving bool) (Result, error) {
	cached, err := s.find(userID)
	if err != nil {
		return Result{}, err
	}
	key := client.ObjectKey{Namespace: s.opts.Namespace, Name: ObjectNameForUser(userID)}
	var current *creditsv1alpha1.UserCredits
	fresh, readFromAPI := resolving, false
	if cached != nil {
		key = client.ObjectKeyFromObject(cached)
		current = cached.DeepCopy()
		fresh = fresh || needsFreshRead(cached, op) // the cache holds only their digest
	}
	backoff := conflictBackoff
	for {
		if fresh {
			if current, err = s.read(ctx, key); err != nil {
				return Result{}, err
			}
			readFromAPI = true
		}
		fresh = true // any second pass reads from the apiserver

		var written *creditsv1alpha1.UserCredits
		var d decision
		if current == nil {
			if op.Kind != OpSet && op.Kind != OpGrant {
				// No record: a balance of 0 and no holds. A refusal is confirmed as below.
				if !readFromAPI && s.confirmRefusal(userID) {
					continue
				}
				d, err = decide(0, nil, nil, op, time.Now(), s.opts.GrantKeyRetention)
				return d.result, err
			}
			if d, err = decide(0, nil, nil, op, time.Now(), s.opts.GrantKeyRetention); err != nil {
				return d.result, err
			}
			written, err = s.create(ctx, key, userID, d)
			if apierrors.IsAlreadyExists(err) {
				continue // another replica (or kubectl) created it meanwhile
			}
		} else {
			if err := s.checkTrusted(current, userID); err != nil {
				return Result{}, err
			}
			d, err = decide(current.Spec.Credits, current.Spec.Reservations, current.Annotations, op, time.Now(), s.opts.GrantKeyRetention)
			if refusal(err) && !readFromAPI && s.confirmRefusal(userID) {
				continue // confirm the refusal against the apiserver
			}
			if err != nil || d.noop {
				if resolving && err == nil {
					s.observe(ctx, current) // the lost write was applied: read-your-writes for it
				}
				return d.result, err
			}
			written, err = s.patch(ctx, current, d)
			if apierrors.IsConflict(err) && backoff.Steps > 1 {
				metrics.ConflictRetries.Inc()
				s.opts.Log.V(1).Info("write conflict, retrying", "userID", userID, "op", op.Kind)
				select {
				case <-time.After(backoff.Step()):
				case <-ctx.Done():
					return Result{}, ctx.Err()
				}
				continue
			}
		}
		if err != nil {
			return Result{}, classifyWriteError(err)
		}
		return s.done(ctx, written, op, d.result)
	}
}

// read gets the object at key from the apiserver; nil when it does not exist.
func (s *Store) read(ctx context.Context, key client.ObjectKey) (*creditsv1alpha1.UserCredits, error) {
	obj := &creditsv1alpha1.UserCredits{}
	if err := s.opts.APIReader.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return obj, nil
}

// create makes userID's record at key holding decision d.
func (s *Store) create(ctx context.Context, key client.ObjectKey, userID string, d decision) (*creditsv1alpha1.UserCredits, error) {
	obj := &creditsv1alpha1.UserCredits{
		ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace, Annotations: d.annotations},
		Spec:       creditsv1alpha1.UserCreditsSpec{UserID: userID, Credits: d.credits, Reservations: d.reservations},
	}
	return obj, s.opts.Client.Create(ctx, obj, client.FieldOwner(FieldManager))
}

// patch writes decision d onto current as a JSON merge patch that carries current's
// resourceVersion: the apiserver refuses it with a conflict when the object changed since
// the decision was taken, so no decision made on stale data is ever stored.
func (s *Store) patch(ctx context.Context, current *creditsv1alpha1.UserCredits, d decision) (*creditsv1alpha1.UserCredits, error) {
	meta := map[string]any{"resourceVersion": current.ResourceVersion}
	if d.annotations != nil {
		meta["annotations"] = d.annotations
	}
	spec := map[string]any{"credits": d.credits}
	if d.holdsChanged {
		// The whole list: a merge patch replaces a list, and the decision knew all of it.
		spec["reservations"] = d.reservations
		if len(d.reservations) == 0 {
			spec["reservations"] = nil
		}
	}
	body, err := json.Marshal(map[string]any{"metadata": meta, "spec": spec})
	if err != nil {
		return nil, err
	}
	written := current.DeepCopy()
	return written, s.opts.Client.Patch(ctx, written, client.RawPatch(types.MergePatchType, body), client.FieldOwner(FieldManager))
}

// done finishes a successful write: read-your-writes, the Event, the log line.
func (s *Store) done(ctx context.Context, written *creditsv1alpha1.UserCredits, op Operation, result Result) (Result, error) {
	s.observe(ctx, written)
	s.opts.Log.Info("balance changed", "userID", written.Spec.UserID, "op", op.Kind, "amount", op.Amount, "credits", result.Credits)
	if reason, ok := eventReasons[op.Kind]; ok && s.opts.Recorder != nil {
		s.opts.Recorder.Eventf(written, nil, "Normal", reason, "UpdateBalance", "%s", eventNote(op, result))
	}
	return result, nil
}

// eventNote describes an operation for its Event.
func eventNote(op Operation, result Result) string {
	if op.Kind == OpExpire {
		return fmt.Sprintf("reservation %s expired and returned to the balance; available is now %d", op.ReservationID, result.Credits)
	}
	return fmt.Sprintf("%s of %d credits through the API; balance is now %d", op.Kind, op.Amount, result.Credits)
}

// eventReasons are the operations that leave a Normal Event on the user's object; consumes
// and holds are too frequent for that.
var eventReasons = map[OpKind]string{OpSet: "CreditsSet", OpGrant: "CreditsGranted", OpExpire: "ReservationExpired"}

// Objects finds the objects claiming a user in the informer cache; *Index implements it.
type Objects interface {
	// One returns the object claiming userID when exactly one does, and how many do.
	One(userID string) (*creditsv1alpha1.UserCredits, int)
	// Lookup returns every object claiming userID.
	Lookup(userID string) []*creditsv1alpha1.UserCredits
	// Observe calls f with every object the informer shows or deletes from now on.
	Observe(f Observer)
}

// find returns userID's one trusted record from the cache, nil when there is none.
// The returned object is shared with the cache and must not be modified.
func (s *Store) find(userID string) (*creditsv1alpha1.UserCredits, error) {
	obj, n := s.opts.Objects.One(userID)
	switch {
	case n == 0:
		return nil, nil
	case n > 1:
		for _, o := range s.opts.Objects.Lookup(userID) {
			_ = s.untrusted(o, userID)
		}
		return nil, fmt.Errorf("%w: %d objects claim user %q", ErrUntrustedRecord, n, userID)
	}
	if err := s.checkTrusted(obj, userID); err != nil {
		return nil, err
	}
	return obj, nil
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
	err := fmt.Errorf("%w: object %s/%s (user %q, credits %d)", ErrUntrustedRecord, obj.Namespace, obj.Name, obj.Spec.UserID, obj.Spec.Credits)
	s.opts.Log.Error(err, "refusing to serve or change a balance", "object", obj.Name, "userID", userID)
	if s.opts.Recorder != nil {
		s.opts.Recorder.Eventf(obj, nil, "Warning", "UntrustedRecord", "ServeBalance",
			"the credits API refused to serve or change user %q: records conflict or hold an invalid balance", userID)
	}
	return err
}
