package credits

import (
	"encoding/json"
	"reflect"
	"testing"
	"unsafe"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// decoded is obj as the informer receives it: decoded from JSON, every string and map its own.
func decoded(t *testing.T, obj *creditsv1alpha1.UserCredits) *creditsv1alpha1.UserCredits {
	t.Helper()
	data, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	out := &creditsv1alpha1.UserCredits{}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCacheTransformSharesWhatObjectsRepeat: two cached objects of the API's naming hold
// one label map and one copy of the namespace and condition strings (not a copy each, as
// decoded), with the same values; an object with other labels keeps its own map.
func TestCacheTransformSharesWhatObjectsRepeat(t *testing.T) {
	object := func(user string, labels map[string]string) *creditsv1alpha1.UserCredits {
		obj := &creditsv1alpha1.UserCredits{
			ObjectMeta: metav1.ObjectMeta{Name: account.ObjectNameForUser(user), Namespace: "credits", Labels: labels},
			Spec:       creditsv1alpha1.UserCreditsSpec{UserID: user, Credits: 5},
		}
		obj.Status.Conditions = []metav1.Condition{{Type: "Valid", Status: metav1.ConditionTrue, Reason: "BalanceValid", Message: "balance of 5 credits accepted"}}
		return decoded(t, obj)
	}
	derived := func() map[string]string { return map[string]string{account.NameLabel: account.NameDerived} }
	a, b := object("user_a", derived()), object("user_b", derived())
	if unsafe.StringData(a.Namespace) == unsafe.StringData(b.Namespace) {
		t.Fatal("the decoded objects already share their namespace: the test shows nothing")
	}
	for _, o := range []*creditsv1alpha1.UserCredits{a, b} {
		if _, err := CacheTransform(o); err != nil {
			t.Fatal(err)
		}
	}
	if reflect.ValueOf(a.Labels).UnsafePointer() != reflect.ValueOf(b.Labels).UnsafePointer() {
		t.Error("two objects labelled only as the API names them hold a label map each")
	}
	if !reflect.DeepEqual(a.Labels, derived()) {
		t.Errorf("labels %v, want %v", a.Labels, derived())
	}
	same := func(what, x, y string) {
		if x != y || unsafe.StringData(x) != unsafe.StringData(y) {
			t.Errorf("%s: %q and %q are not one shared string", what, x, y)
		}
	}
	same("namespace", a.Namespace, b.Namespace)
	ca, cb := a.Status.Conditions[0], b.Status.Conditions[0]
	same("condition type", ca.Type, cb.Type)
	same("condition status", string(ca.Status), string(cb.Status))
	same("condition reason", ca.Reason, cb.Reason)
	if a.Namespace != "credits" || ca.Type != "Valid" || ca.Status != metav1.ConditionTrue || ca.Reason != "BalanceValid" ||
		ca.Message != "balance of 5 credits accepted" {
		t.Errorf("values changed: %q %+v", a.Namespace, ca)
	}

	other := object("user_c", map[string]string{account.NameLabel: account.NameDerived, "team": "x"})
	if _, err := CacheTransform(other); err != nil {
		t.Fatal(err)
	}
	if reflect.ValueOf(other.Labels).UnsafePointer() == reflect.ValueOf(a.Labels).UnsafePointer() || other.Labels["team"] != "x" {
		t.Errorf("an object with a label of its own lost it or shares the common map: %v", other.Labels)
	}
}
