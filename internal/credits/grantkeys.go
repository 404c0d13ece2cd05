package credits

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// A CreditGrant is applied once under its name, to one user. Its key lives in that user's
// grant ledger only, so a CreditGrant deleted and created again under the same name for
// another user would not find it there: the index keeps which objects' ledgers hold which
// CreditGrant keys (account.GitOpsKeys: a handful per record, and only on records that
// have any), and GrantKeyHolders confirms what it finds on the records read whole.

// grantKeyIndex maps each CreditGrant key hash to the objects holding it, and back.
// Guarded by the Index's lock.
type grantKeyIndex struct {
	users map[string]map[string]string // key hash → object (namespace/name) → user ID
	keys  map[string][]string          // object → key hashes
}

func newGrantKeyIndex() grantKeyIndex {
	return grantKeyIndex{users: map[string]map[string]string{}, keys: map[string][]string{}}
}

func objectKey(obj *creditsv1alpha1.UserCredits) string { return obj.Namespace + "/" + obj.Name }

// set records the keys obj holds, in place of those its earlier version held.
func (g grantKeyIndex) set(obj *creditsv1alpha1.UserCredits) {
	g.drop(obj)
	hashes := account.GitOpsKeys(obj)
	if len(hashes) == 0 {
		return
	}
	name := objectKey(obj)
	g.keys[name] = hashes
	for _, h := range hashes {
		if g.users[h] == nil {
			g.users[h] = map[string]string{}
		}
		g.users[h][name] = obj.Spec.UserID
	}
}

// drop forgets the keys obj's object held.
func (g grantKeyIndex) drop(obj *creditsv1alpha1.UserCredits) {
	name := objectKey(obj)
	for _, h := range g.keys[name] {
		if delete(g.users[h], name); len(g.users[h]) == 0 {
			delete(g.users, h)
		}
	}
	delete(g.keys, name)
}

// GrantKeyUsers returns the users whose objects' grant ledgers hold the CreditGrant key
// whose hash (account.KeyHash) is hash, however long ago it was applied.
func (ix *Index) GrantKeyUsers(hash string) []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var users []string
	for _, u := range ix.grantKeys.users[hash] {
		users = append(users, u)
	}
	return users
}

// holding returns the users whose writes by this replica, not yet shown by the informer,
// hold the CreditGrant key hash.
func (o *overlay) holding(hash string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var users []string
	for user, obj := range o.users {
		if slices.Contains(account.GitOpsKeys(obj), hash) {
			users = append(users, user)
		}
	}
	return users
}

// errNotListed: the index has not yet taken in every object, so a user it does not show
// may still hold a key.
var errNotListed = errors.New("the UserCredits objects are not all listed yet")

// GrantKeyHolders returns the users a CreditGrant grant with key was applied to within the
// grant-key retention: those whose records hold the key, as the apiserver has them now.
// Candidates come from the index and this replica's own writes (no list of objects); each
// is confirmed on its record read whole, by name. It refuses to answer until the index
// holds every object.
func (s *Store) GrantKeyHolders(ctx context.Context, key string) ([]account.UserID, error) {
	if !s.opts.Synced() {
		return nil, errNotListed
	}
	hash := account.KeyHash(key)
	candidates := append(s.opts.Objects.GrantKeyUsers(hash), s.reads.written.holding(hash)...)
	slices.Sort(candidates)
	var holders []account.UserID
	now := time.Now()
	for _, u := range slices.Compact(candidates) {
		user := account.UserID(u)
		cached, err := s.reads.cached(user)
		if err != nil {
			return nil, fmt.Errorf("user %q, whose record holds grant key %s: %w", u, key, err)
		}
		obj, err := s.reads.fetch(ctx, s.reads.key(user, cached))
		switch {
		case err != nil:
			return nil, err
		case obj == nil:
			continue // deleted since
		}
		a, err := s.reads.decode(obj, user)
		if err != nil {
			return nil, fmt.Errorf("user %q, whose record holds grant key %s: %w", u, key, err)
		}
		if a.HoldsGrantKey(key, now, s.opts.Settings) {
			holders = append(holders, user)
		}
	}
	return holders, nil
}
