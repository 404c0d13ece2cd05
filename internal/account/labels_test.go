package account

import (
	"encoding/json"
	"maps"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// applyTo applies the write of next, decided on decidedOn, to stored as the apiserver
// would (preconditions first): the object after it, or the patch's refusal.
func applyTo(t *testing.T, stored, decidedOn *creditsv1alpha1.UserCredits, next Account) (*creditsv1alpha1.UserCredits, error) {
	t.Helper()
	ops, err := Patch(decidedOn, next)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(append(Tests(decidedOn), ops...))
	p, err := jsonpatch.DecodePatch(body)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := json.Marshal(stored)
	after, err := p.Apply(before)
	if err != nil {
		return nil, err
	}
	out := &creditsv1alpha1.UserCredits{}
	if err := json.Unmarshal(after, out); err != nil {
		t.Fatal(err)
	}
	return out, nil
}

// TestAccountWriteNeverReplacesLabelsItsDecisionDidNotSee (attack: a write decided on a
// cache that shows the object without labels, labelled since by kubectl or a GitOps tool):
// the write that adds NameLabel never replaces the label map. Decided on no labels, it is
// refused where the object has labels now; decided on labels, it is refused where they
// are gone. Either way the fresh read's TestedState differs from the stale one's, so the
// writer decides again instead of answering the refusal as the write's own fault, and the
// write decided on the fresh read keeps every label.
func TestAccountWriteNeverReplacesLabelsItsDecisionDidNotSee(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, c := range []struct {
		name          string
		seen, stored  map[string]string
		want          map[string]string
		staleRefusals bool
	}{
		{"labelled since", nil, map[string]string{"plan": "pro"}, map[string]string{"plan": "pro", NameLabel: NameDerived}, true},
		{"last label removed since", map[string]string{"plan": "pro"}, nil, map[string]string{NameLabel: NameDerived}, true},
		{"no labels, as seen", nil, nil, map[string]string{NameLabel: NameDerived}, false},
		{"labels as seen", map[string]string{"plan": "pro"}, map[string]string{"plan": "pro"}, map[string]string{"plan": "pro", NameLabel: NameDerived}, false},
	} {
		r := newRecord(t, 10)
		r.obj.Name = ObjectNameForUser("user_A")
		r.obj.Annotations = map[string]string{WriteSeqAnnotation: "4"} // written before: labels are no part of what a write tests
		seen, stored := r.obj.DeepCopy(), r.obj.DeepCopy()
		seen.Labels, stored.Labels = c.seen, c.stored
		a, err := Decode(seen)
		if err != nil {
			t.Fatal(err)
		}
		next, _, _, err := a.Apply(Operation{Kind: OpConsume, Amount: 1}, now, r.rules)
		if err != nil {
			t.Fatal(err)
		}
		got, err := applyTo(t, stored, seen, next)
		if c.staleRefusals {
			if err == nil {
				t.Errorf("%s: a write decided on labels %v is applied over labels %v: %v", c.name, c.seen, c.stored, got.Labels)
				continue
			}
			if TestedState(seen) == TestedState(stored) {
				t.Errorf("%s: the refusal (%v) looks like the write's own fault: TestedState is the same on labels %v and %v", c.name, err, c.seen, c.stored)
			}
			if a, err = Decode(stored); err != nil {
				t.Fatal(err)
			}
			if next, _, _, err = a.Apply(Operation{Kind: OpConsume, Amount: 1}, now, r.rules); err != nil {
				t.Fatal(err)
			}
			got, err = applyTo(t, stored, stored, next)
		}
		if err != nil {
			t.Errorf("%s: the write decided on what is stored is refused: %v", c.name, err)
			continue
		}
		if !maps.Equal(got.Labels, c.want) || got.Spec.Credits != 9 {
			t.Errorf("%s: after the write labels %v, %d credits; want %v, 9", c.name, got.Labels, got.Spec.Credits, c.want)
		}
	}
}
