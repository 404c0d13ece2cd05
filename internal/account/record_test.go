package account

import (
	"encoding/json"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// record is a user's stored object, changed as the store changes it: each operation is
// decided on the account decoded from it, and its patch (tests included) is applied to it
// as the apiserver would. cache, when set, decides on the informer cache's form instead.
type record struct {
	t     testing.TB
	obj   *creditsv1alpha1.UserCredits
	rules Settings
	cache bool
}

func newRecord(t testing.TB, available int64) *record {
	obj := &creditsv1alpha1.UserCredits{Spec: creditsv1alpha1.UserCreditsSpec{UserID: "user_A", Credits: available}}
	obj.UID, obj.Generation, obj.ResourceVersion = "uid-1", 1, "1"
	return &record{t: t, obj: obj, rules: DefaultSettings()}
}

// account decodes the record, in the cache's form when r.cache.
func (r *record) account() Account {
	r.t.Helper()
	obj := r.obj.DeepCopy()
	if r.cache {
		CacheForm(obj)
	}
	a, err := Decode(obj)
	if err != nil {
		r.t.Fatalf("decoding the record: %v", err)
	}
	return a
}

// do decides op at now and writes it, as the store would.
func (r *record) do(op Operation, now time.Time) (Result, bool, error) {
	r.t.Helper()
	a := r.account()
	next, res, changed, err := a.Apply(op, now, r.rules)
	if err == ErrNeedWholeRecord && r.cache {
		r.cache = false
		defer func() { r.cache = true }()
		return r.do(op, now)
	}
	if err != nil || !changed {
		return res, changed, err
	}
	r.write(next)
	return res, true, nil
}

// write applies next's patch to the record.
func (r *record) write(next Account) {
	r.t.Helper()
	ops, err := Patch(r.obj, next)
	if err != nil {
		r.t.Fatalf("encoding: %v", err)
	}
	patch, _ := json.Marshal(append(Tests(r.obj), ops...))
	before, _ := json.Marshal(r.obj)
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		r.t.Fatal(err)
	}
	after, err := p.Apply(before)
	if err != nil {
		r.t.Fatalf("the patch's tests refused it: %v\n%s", err, patch)
	}
	obj := &creditsv1alpha1.UserCredits{}
	if err := json.Unmarshal(after, obj); err != nil {
		r.t.Fatal(err)
	}
	obj.Generation++ // spec changed: as the apiserver counts
	r.obj = obj
}

func (r *record) available() int64 { return r.obj.Spec.Credits }

func (r *record) annotation(name string) string { return r.obj.Annotations[name] }
