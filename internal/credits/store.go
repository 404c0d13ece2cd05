package credits

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
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

// StoreOptions configures a Store: the settings people set, and the parts it is built from.
type StoreOptions struct {
	Settings
	// Objects finds each user's objects in the informer cache (an *Index registered on the
	// manager's cache).
	Objects Objects
	// Synced reports whether Objects holds every object (the informer's first list is in).
	// Until then, a user it does not show is looked up at the apiserver. Nil: always synced.
	Synced func() bool
	// Client writes to the apiserver.
	Client client.Client
	// APIReader reads from the apiserver, bypassing the cache, after a write conflict.
	APIReader client.Reader
	// Namespace holds the UserCredits objects.
	Namespace string
	// Recorder records Events about records that cannot be trusted.
	Recorder events.EventRecorder
	// ResolveTimeout bounds finding out whether a keyed write whose answer was lost was
	// applied (default 1s).
	ResolveTimeout time.Duration
	// WriteTimeout bounds one batch's write when its requests carry no earlier deadline
	// (default 5s).
	WriteTimeout time.Duration
	Log          logr.Logger
}

// +kubebuilder:rbac:groups=credits.gitread.dev,namespace=system,resources=usercredits,verbs=get;list;watch;create;patch

// Store reads balances from the informer cache and writes them to the apiserver. It is the
// only code that reads or writes balances for the API.
type Store struct {
	opts   StoreOptions
	queues queues
	// written keeps this replica's writes until the informer shows them.
	written *overlay
	// refusals remembers, per user, that a refusal was confirmed within refusalConfirmInterval.
	refusals *expiring.Cache[string, struct{}]
	// warmupLists budgets the lists by spec.userID before the index has synced (warmup.go).
	warmupLists *rate.Limiter
	// changes wakes refusals waiting for the cache to show a change (refusals.go).
	changes *userChanges
}

// maxRememberedRefusals bounds the refusal memory; a user dropped from it only costs one
// more confirmation.
const maxRememberedRefusals = 100_000

// conflictBackoff spreads retries of a write that lost an optimistic-concurrency race.
var conflictBackoff = wait.Backoff{Steps: 10, Duration: 5 * time.Millisecond, Factor: 2, Jitter: 0.5, Cap: time.Second}

// NewStore returns a Store, or why its settings cannot serve.
func NewStore(opts StoreOptions) (*Store, error) {
	if err := opts.Settings.Validate(); err != nil {
		return nil, err
	}
	if opts.ResolveTimeout <= 0 {
		opts.ResolveTimeout = time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 5 * time.Second
	}
	if opts.Synced == nil {
		opts.Synced = func() bool { return true }
	}
	s := &Store{opts: opts, queues: queues{users: map[string]*userQueue{}}, refusals: expiring.NewCache[string, struct{}](maxRememberedRefusals), written: newOverlay(),
		warmupLists: rate.NewLimiter(warmupListRate, warmupListBurst), changes: newUserChanges()}
	opts.Objects.Observe(s.written.observe)
	opts.Objects.Observe(s.changes.observe)
	return s, nil
}

// Settings are the settings the store runs with.
func (s *Store) Settings() Settings { return s.opts.Settings }

// Namespace is the namespace whose objects the store reads and writes.
func (s *Store) Namespace() string { return s.opts.Namespace }

// Balance returns userID's balance, 0 when the user has no record.
func (s *Store) Balance(ctx context.Context, userID string) (int64, error) {
	if !ValidUserID(userID) {
		return 0, ErrInvalidUserID
	}
	obj, _, err := s.lookup(ctx, userID)
	if err != nil || obj == nil {
		return 0, err
	}
	return obj.Spec.Credits, nil
}

// Apply performs op on userID's balance, creating the user's record when a set or grant
// needs one, and returns once this replica's cache shows the write. Operations on one user
// are written by one writer per replica, together when they arrive during a write (group
// commit), and use optimistic concurrency across replicas.
func (s *Store) Apply(ctx context.Context, userID string, op Operation) (Result, error) {
	if !ValidUserID(userID) {
		return Result{}, ErrInvalidUserID
	}
	if op.Kind == OpReserve && op.ReservationID == "" {
		op.ReservationID = newReservationID() // before any attempt, so a retry keeps it
	}
	return s.enqueue(ctx, userID, op)
}

// writeBatch decides ops on userID's state and writes them in one patch (or create). The
// decision starts from the cache unless resolving; every retry reads the object from the
// apiserver. A batch that writes is confirmed by its preconditions (writePatch), and so
// are the refusals decided on the same state; a batch of refusals alone is confirmed by a
// read from the apiserver (confirmRefusal), or, over that read's budget, decided again when
// the cache shows a change until settleUntil (refusalSettle after the last of ops arrived).
// A zero settleUntil means resolving: every decision is made on a fresh read.
func (s *Store) writeBatch(ctx context.Context, userID string, ops []Operation, settleUntil time.Time) ([]outcome, error) {
	for settles := 1; ; settles++ {
		if settles > maxRefusalSettles {
			settleUntil = time.Time{} // the cache keeps moving: decide on a fresh read instead
		}
		out, err := s.decideAndWrite(ctx, userID, ops, settleUntil)
		if !errors.Is(err, errCacheMoved) {
			return out, err
		}
	}
}

// decideAndWrite is one decision of writeBatch's; errCacheMoved asks for another.
func (s *Store) decideAndWrite(ctx context.Context, userID string, ops []Operation, settleUntil time.Time) ([]outcome, error) {
	resolving := settleUntil.IsZero()
	cached, readFromAPI, err := s.lookup(ctx, userID)
	if err != nil {
		if readFromAPI {
			return nil, err // the apiserver could not be read
		}
		return errorOutcomes(len(ops), err), nil
	}
	key := client.ObjectKey{Namespace: s.opts.Namespace, Name: ObjectNameForUser(userID)}
	var current *creditsv1alpha1.UserCredits
	fresh := resolving
	if cached != nil {
		key = client.ObjectKeyFromObject(cached)
		current = cached.DeepCopy()
		for _, op := range ops {
			fresh = fresh || (!readFromAPI && needsFreshRead(cached, op)) // the cache holds only a digest of grant keys
		}
	}
	backoff := conflictBackoff
	var invalid error // a write answered 422, and what it tested
	var invalidTested string
	for {
		if fresh {
			if current, err = s.read(ctx, key); err != nil {
				return nil, err
			}
			if current == nil {
				s.written.forget(userID) // the apiserver has no object: nor may the overlay
			}
			readFromAPI = true
			if invalid != nil && current != nil && testedState(current) == invalidTested {
				return nil, classifyWriteError(invalid) // nothing it tested moved: the write itself was refused
			}
			invalid = nil
		}
		fresh = true // any second pass reads from the apiserver

		var b batchDecision
		if current == nil {
			b = decideBatch(0, nil, nil, ops, time.Now(), s.opts.GrantKeyRetention)
		} else {
			if err := s.checkTrusted(current, userID); err != nil {
				return errorOutcomes(len(ops), err), nil
			}
			b = decideBatch(current.Spec.Credits, current.Spec.Reservations, current.Annotations, ops, time.Now(), s.opts.GrantKeyRetention)
		}
		if b.writes == 0 {
			if b.refused && !readFromAPI {
				if s.confirmRefusal(userID) {
					continue // confirm the refusals against the apiserver
				}
				if s.cacheMovedPast(ctx, userID, cached, settleUntil) {
					return nil, errCacheMoved
				}
			}
			if resolving && current != nil {
				s.written.remember(current) // what the answers rest on: read-your-writes for it
			}
			return b.outcomes, nil
		}
		var written *creditsv1alpha1.UserCredits
		if current == nil {
			written, err = s.create(ctx, key, userID, b)
			if apierrors.IsAlreadyExists(err) {
				continue // another replica (or kubectl) created it meanwhile
			}
		} else {
			written, err = s.patch(ctx, current, b)
			if mayBeStale(err) && backoff.Steps > 1 {
				if apierrors.IsInvalid(err) {
					invalid, invalidTested = err, testedState(current)
				}
				metrics.ConflictRetries.Inc()
				s.opts.Log.V(1).Info("write conflict, retrying", "userID", userID, "operations", len(ops))
				select {
				case <-time.After(backoff.Step()):
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				continue
			}
		}
		if err != nil {
			return nil, classifyWriteError(err)
		}
		s.done(written, b)
		return b.outcomes, nil
	}
}

// resolve answers a batch whose write failed. A write whose answer was lost (deadline,
// broken connection, apiserver timeout) may or may not have been applied; its keyed
// operations find out: applied again from a fresh read, each either finds its key recorded
// (it was applied) or applies now, under the preconditions (writePatch) that make a late
// arrival of the first write fail, so each happens exactly once. Keyless operations, and
// every operation of a write that surely failed, answer the error.
func (s *Store) resolve(userID string, ops []Operation, err error) []outcome {
	out := errorOutcomes(len(ops), err)
	var unknown *unknownOutcomeError
	if !errors.As(err, &unknown) {
		return out
	}
	var keyed []Operation
	var at []int
	for i, op := range ops {
		if op.IdempotencyKey != "" {
			keyed, at = append(keyed, op), append(at, i)
		}
	}
	if len(keyed) == 0 {
		return out
	}
	s.opts.Log.Info("write outcome unknown; resolving its keyed operations", "userID", userID, "operations", len(keyed), "error", unknown.Error())
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.ResolveTimeout)
	defer cancel()
	resolved, rerr := s.writeBatch(ctx, userID, keyed, time.Time{})
	if rerr != nil {
		return out
	}
	for j, i := range at {
		out[i] = resolved[j]
		out[i].res.Replayed = false // this request's first and only answer
	}
	return out
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

// create makes userID's record at key holding batch b.
func (s *Store) create(ctx context.Context, key client.ObjectKey, userID string, b batchDecision) (*creditsv1alpha1.UserCredits, error) {
	obj := &creditsv1alpha1.UserCredits{
		ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace, Annotations: b.annotations},
		Spec:       creditsv1alpha1.UserCreditsSpec{UserID: userID, Credits: b.credits, Reservations: b.holds},
	}
	return obj, s.opts.Client.Create(ctx, obj, client.FieldOwner(FieldManager))
}

// patch writes batch b onto current as a JSON patch whose tests the apiserver checks
// against the stored object (writePatch): it refuses the write when what the decision read
// has changed since, so no decision made on stale data is ever stored.
func (s *Store) patch(ctx context.Context, current *creditsv1alpha1.UserCredits, b batchDecision) (*creditsv1alpha1.UserCredits, error) {
	body, err := writePatch(current, b)
	if err != nil {
		return nil, err
	}
	written := current.DeepCopy()
	return written, s.opts.Client.Patch(ctx, written, client.RawPatch(types.JSONPatchType, body), client.FieldOwner(FieldManager))
}

// done finishes a successful write: read-your-writes, then a log line for each operation
// it wrote and an Event for those that leave one.
func (s *Store) done(written *creditsv1alpha1.UserCredits, b batchDecision) {
	written.ManagedFields = nil
	s.written.remember(written)
	for i, op := range b.written {
		if op.Purchase != "" {
			s.opts.Log.Info("balance changed", "userID", written.Spec.UserID, "op", KindPurchase, "amount", op.Amount, "checkoutSession", op.Purchase, "batch", len(b.written), "index", i)
			if s.opts.Recorder != nil {
				s.opts.Recorder.Eventf(eventSubject(written), checkoutSession(op.Purchase), "Normal", "CreditsPurchased", "UpdateBalance",
					"%s purchased: Stripe Checkout Session %s", CountCredits(op.Amount), op.Purchase)
			}
			continue
		}
		s.opts.Log.Info("balance changed", "userID", written.Spec.UserID, "op", op.Kind, "amount", op.Amount, "batch", len(b.written), "index", i)
		if e, ok := operationEvents[op.Kind]; ok && s.opts.Recorder != nil {
			s.opts.Recorder.Eventf(eventSubject(written), nil, "Normal", e.reason, "UpdateBalance", "%s", e.note)
		}
	}
}

// Objects finds the objects claiming a user in the informer cache; *Index implements it.
type Objects interface {
	// One returns the object claiming userID when exactly one does, and how many do.
	One(userID string) (*creditsv1alpha1.UserCredits, int)
	// Lookup returns every object claiming userID.
	Lookup(userID string) []*creditsv1alpha1.UserCredits
	// Observe calls f with every object the informer shows or deletes from now on.
	Observe(f Observer)
}

// find returns userID's one trusted record from the cache, or this replica's own write of
// it when the cache does not show that yet; nil when there is none. The returned object is
// shared and must not be modified.
func (s *Store) find(userID string) (*creditsv1alpha1.UserCredits, error) {
	obj, n := s.opts.Objects.One(userID)
	if n > 1 {
		for _, o := range s.opts.Objects.Lookup(userID) {
			_ = s.untrusted(o, userID)
		}
		return nil, fmt.Errorf("%w: %d objects claim user %q", ErrUntrustedRecord, n, userID)
	}
	if obj = s.written.newest(userID, obj); obj == nil {
		return nil, nil
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
