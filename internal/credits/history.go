package credits

import (
	"time"

	"golang.org/x/time/rate"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/expiring"
)

// The history is stored whole only in the apiserver: the informer cache keeps what
// appending needs (account.CacheForm). GET /api/credits/transactions reads it from the
// apiserver at most once a second per user (historyReadInterval), and answers from the
// copy it last read while the user's record has not changed since (its resourceVersion),
// or from this replica's own write of it, which the apiserver answered whole: a user sees
// their own change at once, and calling in a loop costs the apiserver one read a second.

// historyReadInterval is how often, at most, one user's history is read from the apiserver.
const historyReadInterval = time.Second

// maxHistoryCopies bounds the copies kept: users who asked for their history lately.
const maxHistoryCopies = 10_000

// historyCopy is a user's history as one state of their record held it.
type historyCopy struct {
	uid, resourceVersion string
	entries              []account.Transaction
	// reads budgets this user's apiserver reads of the history.
	reads *rate.Limiter
}

// historyReads keeps the copies.
type historyReads struct {
	copies *expiring.Cache[account.UserID, *historyCopy]
}

func newHistoryReads() *historyReads {
	return &historyReads{copies: expiring.NewCache[account.UserID, *historyCopy](maxHistoryCopies)}
}

// of returns the copy of user's history as obj's state holds it, if one is kept.
func (h *historyReads) of(user account.UserID, obj *creditsv1alpha1.UserCredits) (*historyCopy, []account.Transaction, bool) {
	c, ok := h.copies.Get(user, time.Now())
	if !ok {
		return nil, nil, false
	}
	return c, c.entries, obj != nil && c.uid == string(obj.UID) && c.resourceVersion == obj.ResourceVersion
}

// keep records the history of obj, read whole, for user.
func (h *historyReads) keep(user account.UserID, c *historyCopy, obj *creditsv1alpha1.UserCredits, entries []account.Transaction) {
	if c == nil {
		c = &historyCopy{reads: rate.NewLimiter(rate.Every(historyReadInterval), 1)}
		c.reads.Allow() // the read this copy comes from
	}
	now := time.Now()
	h.copies.Put(user, &historyCopy{uid: string(obj.UID), resourceVersion: obj.ResourceVersion, entries: entries, reads: c.reads},
		now.Add(time.Minute), now)
}

// wrote updates a kept copy with this replica's write of the record, whole as the
// apiserver answered it.
func (h *historyReads) wrote(written *creditsv1alpha1.UserCredits) {
	user := account.UserID(written.Spec.UserID)
	c, ok := h.copies.Get(user, time.Now())
	if !ok {
		return
	}
	if a, err := account.Decode(written); err == nil {
		h.keep(user, c, written, a.History())
	}
}
