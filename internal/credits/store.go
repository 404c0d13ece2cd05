package credits

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitread/usercredits-operator/internal/account"
)

// StoreOptions configures a Store: the settings people set, and the parts it is built from.
type StoreOptions struct {
	account.Settings
	// Objects finds each user's objects in the informer cache (an *Index registered on the
	// manager's cache).
	Objects Objects
	// Synced reports whether Objects holds every object (the informer's first list is in).
	// Until then, a user it does not show is looked up at the apiserver. Nil: always synced.
	Synced func() bool
	// Foreign finds the objects that do not carry account.NameLabel (a GitOps tool's
	// names; an *Index on a cache of only those), which a read by the derived name cannot
	// see; ForeignSynced reports whether it holds them all. Nil: a warming replica lists
	// each user by the spec.userID field selector instead (warmup.go).
	Foreign       Objects
	ForeignSynced func() bool
	// Pacer, when set, is told of the warm-up's reads that wait for the apiserver, so that
	// the informer's first list (whose transform it wraps) gives way to them (pace.go).
	Pacer *ListPacer
	// Client writes to the apiserver.
	Client client.Client
	// APIReader reads from the apiserver, bypassing the cache.
	APIReader client.Reader
	// Namespace holds the UserCredits objects.
	Namespace string
	// Recorder records Events about records that cannot be trusted.
	Recorder events.EventRecorder
	// ResolveTimeout bounds finding out whether a keyed write whose answer was lost was
	// applied (default 1s).
	ResolveTimeout time.Duration
	// WriteTimeout bounds one batch's write when its requests carry no earlier deadline
	// (the controller's expiries): the API's request timeout.
	WriteTimeout time.Duration
	Log          logr.Logger
}

// +kubebuilder:rbac:groups=credits.gitread.dev,namespace=system,resources=usercredits,verbs=get;list;watch;create;patch

// Store reads balances from the informer cache and writes them to the apiserver. It is the
// only code that reads or writes balances for the API. It is built of parts, each in a
// file of its own: reads (reads.go, overlay.go, warmup.go), the writer (writes.go) and its
// refusals (refusals.go), one writer per user (batch.go), and the history (history.go).
type Store struct {
	opts    StoreOptions
	reads   *reader
	writes  *writer
	batches *batcher
	history *historyReads
}

// NewStore returns a Store, or why its settings cannot serve.
func NewStore(opts StoreOptions) (*Store, error) {
	if err := opts.Settings.Validate(); err != nil {
		return nil, err
	}
	if opts.ResolveTimeout <= 0 {
		opts.ResolveTimeout = time.Second
	}
	if opts.WriteTimeout <= 0 {
		return nil, fmt.Errorf("the store's write timeout must be positive, not %v", opts.WriteTimeout)
	}
	if opts.Synced == nil {
		opts.Synced = func() bool { return true }
	}
	report := newReporter(opts.Recorder, opts.Log)
	written := newOverlay()
	opts.Objects.Observe(written.observe)
	reads := &reader{objects: opts.Objects, written: written, synced: opts.Synced, api: opts.APIReader, namespace: opts.Namespace, report: report}
	reads.warm = newWarmup(opts.APIReader, opts.Namespace, written, opts.Synced, reads.cached, report)
	reads.warm.foreign, reads.warm.foreignSynced, reads.warm.pacer = opts.Foreign, opts.ForeignSynced, opts.Pacer
	history := newHistoryReads()
	w := &writer{reads: reads, refusals: newRefusalGate(opts.Objects, written), client: opts.Client, rules: opts.Settings, report: report,
		history: history, resolveTimeout: opts.ResolveTimeout, writeTimeout: opts.WriteTimeout, log: opts.Log}
	return &Store{opts: opts, reads: reads, writes: w, history: history,
		batches: &batcher{users: map[account.UserID]*userQueue{}, write: w.writeQueued}}, nil
}

// Ready is a readiness check: a replica serves once it knows which users objects under
// other names claim (Foreign), which is one quick selection, long before its cache holds
// every object.
func (s *Store) Ready(*http.Request) error {
	if s.opts.ForeignSynced != nil && !s.opts.ForeignSynced() {
		return errors.New("the objects under names the API did not give are not listed yet")
	}
	return nil
}

// Start ends the store's warm-up once the index has synced: the records it read or wrote
// at the apiserver meanwhile that the index does not show are checked (warmup.go, settle).
// The Store is a manager runnable on every replica (NeedLeaderElection).
func (s *Store) Start(ctx context.Context) error {
	for !s.opts.Synced() {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(warmupPoll):
		}
	}
	s.reads.settle(ctx)
	return nil
}

// NeedLeaderElection is false: every replica serves, and warms up.
func (*Store) NeedLeaderElection() bool { return false }

// Settings are the account rules the store decides by.
func (s *Store) Settings() account.Settings { return s.opts.Settings }

// Namespace is the namespace whose objects the store reads and writes.
func (s *Store) Namespace() string { return s.opts.Namespace }

// Balance returns user's available balance, 0 when the user has no record.
func (s *Store) Balance(ctx context.Context, user account.UserID) (int64, error) {
	obj, _, err := s.reads.current(ctx, user, false)
	if err != nil || obj == nil {
		return 0, err
	}
	return s.reads.balance(obj, user)
}

// Apply performs op on user's account, creating the user's record when a set or grant
// needs one, and returns once this replica reads the write back. Operations on one user
// are written by one writer per replica, together when they arrive during a write (group
// commit, batch.go), and use optimistic concurrency across replicas (writes.go).
func (s *Store) Apply(ctx context.Context, user account.UserID, op account.Operation) (account.Result, error) {
	switch { // named before any attempt, so that a retry keeps the name
	case op.Kind == account.OpReserve && op.ReservationID == "":
		op.ReservationID = newID("rsv_")
	case op.Kind == account.OpGrant && op.Terms.ID == "":
		op.Terms.ID = newID("lot_")
	}
	return s.batches.enqueue(ctx, user, op)
}

// Transactions returns user's last account.HistoryLength changes, newest first.
func (s *Store) Transactions(ctx context.Context, user account.UserID) ([]account.Transaction, error) {
	cached, _, err := s.reads.current(ctx, user, false)
	if err != nil {
		return nil, err
	}
	c, entries, current := s.history.of(user, cached)
	if current {
		return entries, nil
	}
	if c != nil {
		if err := c.reads.Wait(ctx); err != nil { // this user's one read a second
			return nil, err
		}
	}
	obj, err := s.reads.fetch(ctx, s.reads.key(user, cached))
	if err != nil || obj == nil {
		return []account.Transaction{}, err
	}
	a, err := s.reads.decode(obj, user)
	if err != nil {
		return nil, err
	}
	s.history.keep(user, c, obj, a.History())
	return a.History(), nil
}

// Expire returns user's hold holdID to the balance if its time is up, and does nothing
// otherwise. The controller calls it when a hold is due.
func (s *Store) Expire(ctx context.Context, user account.UserID, holdID string) error {
	_, err := s.Apply(ctx, user, account.Operation{Kind: account.OpExpire, ReservationID: holdID})
	return err
}

// ExpireLots removes what is left of user's lots whose time is up, and does nothing when
// none is. The controller calls it when a lot is due.
func (s *Store) ExpireLots(ctx context.Context, user account.UserID) error {
	_, err := s.Apply(ctx, user, account.Operation{Kind: account.OpExpire})
	return err
}

// Grants returns user's lots with credits left, in spending order (from the cache: a
// read, like the balance).
func (s *Store) Grants(ctx context.Context, user account.UserID) ([]account.GrantView, error) {
	obj, _, err := s.reads.current(ctx, user, false)
	if err != nil || obj == nil {
		return nil, err
	}
	a, err := s.reads.summary(obj, user)
	if err != nil {
		return nil, err
	}
	return a.Grants(time.Now()), nil
}

// newID is a fresh hold or lot ID: prefix and 16 random hex digits.
func newID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	return prefix + hex.EncodeToString(b[:])
}
