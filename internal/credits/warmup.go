package credits

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/time/rate"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// Readiness does not wait for the informer's first list, which at 100,000 users takes the
// apiserver alone tens of seconds to send (make bench). Until that list is in, a user the
// index does not show yet is read from the apiserver:
//
//   - first by the name the API gives every object it creates (ObjectNameForUser): one GET,
//     a few milliseconds for the apiserver at any scale;
//   - when that name does not exist, the user has no record, or one a GitOps tool named.
//     Only a list by the spec.userID field selector tells them apart, and it makes the
//     apiserver scan every object of the namespace (about 100 ms at 100,000). Those lists
//     share one budget per replica (warmupListRate); a lookup over budget waits for the
//     index instead, until its request's deadline.
//
// A record found is remembered with this replica's own writes (readyourwrites.go) until the
// index shows it, so each user costs at most one such read while the replica warms up.
const (
	warmupListRate  = rate.Limit(5)
	warmupListBurst = 10
	warmupPoll      = 50 * time.Millisecond
)

// lookup finds userID's record as find does; until the index has synced, a user it does
// not show yet is read from the apiserver (above), and fromAPI says so.
func (s *Store) lookup(ctx context.Context, userID string) (obj *creditsv1alpha1.UserCredits, fromAPI bool, err error) {
	if obj, err = s.find(userID); err != nil || obj != nil || s.opts.Synced() {
		return obj, false, err
	}
	if obj, err = s.read(ctx, client.ObjectKey{Namespace: s.opts.Namespace, Name: ObjectNameForUser(userID)}); err != nil {
		return nil, true, err
	}
	if obj == nil {
		for {
			if s.opts.Synced() {
				obj, err = s.find(userID)
				return obj, false, err
			}
			if s.warmupLists.Allow() {
				break
			}
			select {
			case <-ctx.Done():
				return nil, true, fmt.Errorf("waiting for the informer's first list: %w", ctx.Err())
			case <-time.After(warmupPoll):
			}
		}
		if obj, err = s.listByUserID(ctx, userID); err != nil || obj == nil {
			return nil, true, err
		}
	}
	if err := s.checkTrusted(obj, userID); err != nil {
		return nil, true, err
	}
	obj.ManagedFields = nil
	s.written.remember(obj) // the next read of this user needs no apiserver call
	return obj, true, nil
}

// listByUserID finds userID's one object under any name by the spec.userID field selector;
// nil when there is none.
func (s *Store) listByUserID(ctx context.Context, userID string) (*creditsv1alpha1.UserCredits, error) {
	var list creditsv1alpha1.UserCreditsList
	if err := s.opts.APIReader.List(ctx, &list, client.InNamespace(s.opts.Namespace), client.MatchingFields{creditsv1alpha1.UserIDField: userID}); err != nil {
		return nil, err
	}
	switch len(list.Items) {
	case 0:
		return nil, nil
	case 1:
		return &list.Items[0], nil
	}
	for i := range list.Items {
		_ = s.untrusted(&list.Items[i], userID)
	}
	return nil, fmt.Errorf("%w: %d objects claim user %q", ErrUntrustedRecord, len(list.Items), userID)
}
