package credits

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
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

// +kubebuilder:rbac:groups=credits.gitread.dev,resources=usercredits,verbs=get;list;watch;create;patch

// Store reads balances from the informer cache and writes them to the apiserver. It is the
// only code that reads or writes balances for the API.
type Store struct{ opts StoreOptions }

// conflictBackoff spreads retries of a write that lost an optimistic-concurrency race.
var conflictBackoff = wait.Backoff{Steps: 10, Duration: 5 * time.Millisecond, Factor: 2, Jitter: 0.5, Cap: time.Second}

// NewStore returns a Store.
func NewStore(opts StoreOptions) *Store {
	if opts.ReadYourWritesTimeout <= 0 {
		opts.ReadYourWritesTimeout = 2 * time.Second
	}
	return &Store{opts: opts}
}

// Balance returns userID's balance, 0 when the user has no record.
func (s *Store) Balance(ctx context.Context, userID string) (int64, error) {
	obj, err := s.find(ctx, userID)
	if err != nil || obj == nil {
		return 0, err
	}
	return obj.Spec.Credits, nil
}

// SetBalance sets userID's balance to credits, creating the user's record when missing, and
// returns once this replica's cache shows the write.
func (s *Store) SetBalance(ctx context.Context, userID string, credits int64) (int64, error) {
	if credits < 0 {
		return 0, fmt.Errorf("negative balance %d", credits)
	}
	obj, err := s.find(ctx, userID)
	if err != nil {
		return 0, err
	}
	if obj == nil {
		created := &creditsv1alpha1.UserCredits{
			ObjectMeta: metav1.ObjectMeta{Name: ObjectNameForUser(userID), Namespace: s.opts.Namespace},
			Spec:       creditsv1alpha1.UserCreditsSpec{UserID: userID, Credits: credits},
		}
		err := s.opts.Client.Create(ctx, created, client.FieldOwner(FieldManager))
		if err == nil {
			s.awaitCache(ctx, created)
			return credits, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return 0, err
		}
		// Another replica (or a request this cache has not seen yet) created it first.
		obj = &creditsv1alpha1.UserCredits{ObjectMeta: created.ObjectMeta}
	}
	return s.update(ctx, obj, userID, credits)
}

// update sets spec.credits on obj with optimistic concurrency, re-reading it from the
// apiserver after each conflict. An obj without resourceVersion is read first.
func (s *Store) update(ctx context.Context, obj *creditsv1alpha1.UserCredits, userID string, credits int64) (int64, error) {
	current := obj.DeepCopy()
	fresh := current.ResourceVersion != ""
	err := retry.OnError(conflictBackoff, apierrors.IsConflict, func() error {
		if !fresh {
			if err := s.opts.APIReader.Get(ctx, client.ObjectKeyFromObject(current), current); err != nil {
				return err
			}
		}
		fresh = false
		if current.Spec.UserID != userID || current.Spec.Credits < 0 {
			return s.untrusted(current, userID)
		}
		if current.Spec.Credits == credits {
			return nil // nothing to write; the object already says so
		}
		patch := client.MergeFromWithOptions(current.DeepCopy(), client.MergeFromWithOptimisticLock{})
		current.Spec.Credits = credits
		return s.opts.Client.Patch(ctx, current, patch, client.FieldOwner(FieldManager))
	})
	if err != nil {
		return 0, err
	}
	s.awaitCache(ctx, current)
	return credits, nil
}

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
	case list.Items[0].Spec.Credits < 0:
		return nil, s.untrusted(&list.Items[0], userID)
	}
	return &list.Items[0], nil
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

// awaitCache waits, within ReadYourWritesTimeout and ctx, until the cache holds obj at its
// written resourceVersion or later, so that a client's next read on this replica sees its write.
// The write is durable either way; a slow cache only costs the wait.
func (s *Store) awaitCache(ctx context.Context, written *creditsv1alpha1.UserCredits) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ReadYourWritesTimeout)
	defer cancel()
	key := client.ObjectKeyFromObject(written)
	cached := &creditsv1alpha1.UserCredits{}
	err := wait.PollUntilContextCancel(ctx, 2*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if err := s.opts.Cache.Get(ctx, key, cached); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return resourceVersionAtLeast(cached.ResourceVersion, written.ResourceVersion), nil
	})
	if err != nil {
		s.opts.Log.Info("cache did not show a write in time", "object", key.Name, "resourceVersion", written.ResourceVersion, "error", err.Error())
	}
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
