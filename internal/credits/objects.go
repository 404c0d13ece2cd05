package credits

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// Objects finds the objects claiming a user in the informer cache; *Index implements it.
type Objects interface {
	// One returns the object claiming userID when exactly one does, and how many do.
	One(userID string) (*creditsv1alpha1.UserCredits, int)
	// Lookup returns every object claiming userID.
	Lookup(userID string) []*creditsv1alpha1.UserCredits
	// Observe calls f with every object the informer shows or deletes from now on.
	Observe(f Observer)
	// GrantKeyUsers returns the users whose objects hold the CreditGrant key whose hash
	// is hash (grantkeys.go).
	GrantKeyUsers(hash string) []string
	// Payers returns the users whose lots name a Stripe PaymentIntent.
	Payers(pi string) []string
}

// fetch gets the object at key from the apiserver, without its managedFields; nil when it
// does not exist.
func fetch(ctx context.Context, api client.Reader, key client.ObjectKey, opts ...client.GetOption) (*creditsv1alpha1.UserCredits, error) {
	obj := &creditsv1alpha1.UserCredits{}
	if err := api.Get(ctx, key, obj, opts...); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	obj.ManagedFields = nil
	return obj, nil
}

// fromWatchCache asks the apiserver for an object as its watch cache holds it
// (resourceVersion 0): no etcd read, and as fresh as an informer fed from that cache, this
// replica's once synced. Not for what confirms a decision: that reads etcd (fetch).
var fromWatchCache = &client.GetOptions{Raw: &metav1.GetOptions{ResourceVersion: "0"}}
