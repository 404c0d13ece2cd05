package credits

import (
	"unique"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// CacheTransform is the informer cache's transform for UserCredits: it drops managedFields
// (the cache never needs them; they are most of an object's size), keeps the account in
// the form decisions read (account.CacheForm), and shares what most cached objects hold
// alike (shareCommon). Other objects pass through.
func CacheTransform(in any) (any, error) {
	obj, ok := in.(*creditsv1alpha1.UserCredits)
	if !ok {
		return in, nil
	}
	obj.ManagedFields = nil
	account.CacheForm(obj)
	shareCommon(obj)
	return obj, nil
}

// derivedOnly is the labels of an object the API named and labelled so, and nothing else:
// nearly every object. Cached objects are read, never changed in place (a write patches
// the apiserver; the controller's reads are deep copies), so one map serves them all.
var derivedOnly = map[string]string{account.NameLabel: account.NameDerived}

// shareCommon makes obj hold, instead of copies of its own, the one derivedOnly label map
// and the one copy of each string that objects repeat (namespace, condition type, status
// and reason): the decoder allocates each anew, and at a million cached objects those
// copies are a sixth of the operator's heap (make bench SCALE=1000000).
func shareCommon(obj *creditsv1alpha1.UserCredits) {
	if len(obj.Labels) == 1 && obj.Labels[account.NameLabel] == account.NameDerived {
		obj.Labels = derivedOnly
	}
	obj.Namespace = intern(obj.Namespace)
	for i := range obj.Status.Conditions {
		c := &obj.Status.Conditions[i]
		c.Type, c.Reason = intern(c.Type), intern(c.Reason)
		c.Status = metav1.ConditionStatus(intern(string(c.Status)))
	}
}

// intern returns the one shared copy of s.
func intern(s string) string { return unique.Make(s).Value() }
