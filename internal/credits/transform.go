package credits

import (
	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// CacheTransform is the informer cache's transform for UserCredits: it drops managedFields
// (the cache never needs them; they are most of an object's size) and keeps the account in
// the form decisions read (account.CacheForm). Other objects pass through.
func CacheTransform(in any) (any, error) {
	obj, ok := in.(*creditsv1alpha1.UserCredits)
	if !ok {
		return in, nil
	}
	obj.ManagedFields = nil
	account.CacheForm(obj)
	return obj, nil
}
