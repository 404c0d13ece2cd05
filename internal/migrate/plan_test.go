package migrate

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

func TestDecide(t *testing.T) {
	row := Row{UserID: "user_a", Credits: 5, UpdatedAt: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)}
	full := exportRows()[2]
	for _, c := range []struct {
		name      string
		row       Row
		ex        *Existing
		overwrite bool
		want      Action
	}{
		{"no object", row, nil, false, Create},
		{"imported by an earlier run, spent since", row, &Existing{Objects: 1, Imported: row.Digest(), Credits: 2}, false, AlreadyImported},
		{"imported, spent since, --overwrite", row, &Existing{Objects: 1, Imported: row.Digest(), Credits: 2}, true, AlreadyImported},
		{"the same balance, never imported", row, &Existing{Objects: 1, Credits: 5}, false, Unchanged},
		{"the same balance, with holds the row does not speak of", row, &Existing{Objects: 1, Credits: 5, Content: "x"}, false, Unchanged},
		{"another balance", row, &Existing{Objects: 1, Credits: 6}, false, Differs},
		{"another balance, --overwrite", row, &Existing{Objects: 1, Credits: 6}, true, Overwrite},
		{"imported from another row (a later export)", row, &Existing{Objects: 1, Imported: "0123456789abcdef", Credits: 6}, false, Differs},
		{"two objects claim the user", row, &Existing{Objects: 2, Credits: 5}, true, Contested},
		{"full row, the same", full, &Existing{Objects: 1, Credits: full.Credits, Content: content(full.Holds, full.Lots)}, false, Unchanged},
		{"full row, other lots", full, &Existing{Objects: 1, Credits: full.Credits}, false, Differs},
	} {
		if got := Decide(c.row, c.ex, c.overwrite); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestRowDigest(t *testing.T) {
	base := Row{UserID: "user_a", Credits: 5, Line: 3}
	moved := base
	moved.Line = 900
	if base.Digest() != moved.Digest() {
		t.Error("the digest depends on the line")
	}
	for name, other := range map[string]Row{
		"credits": {UserID: "user_a", Credits: 50},
		"user":    {UserID: "user_a5"},
		"time":    {UserID: "user_a", Credits: 5, UpdatedAt: time.Unix(1, 0)},
	} {
		if other.Digest() == base.Digest() {
			t.Errorf("another %s, the same digest", name)
		}
	}
}

func TestNewObject(t *testing.T) {
	for _, r := range exportRows() {
		obj := NewObject(r, "ns")
		if obj.Name != account.ObjectNameForUser(string(r.UserID)) || obj.Namespace != "ns" || obj.Labels[account.NameLabel] != account.NameDerived {
			t.Errorf("%s: named %s/%s, labels %v", r.UserID, obj.Namespace, obj.Name, obj.Labels)
		}
		if _, err := account.Summary(obj); err != nil {
			t.Errorf("%s: the account model refuses the object: %v", r.UserID, err)
		}
		obj.Generation = 1 // what the create gives it
		i, ok := account.ImportedOf(obj)
		if !ok || i.Row != r.Digest() {
			t.Errorf("%s: records %+v, want row %s", r.UserID, i, r.Digest())
		}
		at, ok := account.ImportedAt(obj)
		if ok != !r.UpdatedAt.IsZero() || !at.Equal(r.UpdatedAt) {
			t.Errorf("%s: ImportedAt %v %v, want %v", r.UserID, at, ok, r.UpdatedAt)
		}
		if ex := ExistingOf(obj); Decide(r, &ex, true) != AlreadyImported {
			t.Errorf("%s: its own object is not taken for the row imported", r.UserID)
		}
	}
}

// patched applies an OverwritePatch to obj as the apiserver would, generation included.
func patched(t *testing.T, obj *creditsv1alpha1.UserCredits, r Row) *creditsv1alpha1.UserCredits {
	t.Helper()
	patch, err := OverwritePatch(obj, r, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(obj)
	out, err := p.Apply(doc)
	if err != nil {
		t.Fatalf("the patch does not apply: %v\n%s", err, patch)
	}
	next := &creditsv1alpha1.UserCredits{}
	if err := json.Unmarshal(out, next); err != nil {
		t.Fatal(err)
	}
	next.Generation++
	return next
}

func TestOverwritePatch(t *testing.T) {
	expires := metav1.NewTime(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	current := &creditsv1alpha1.UserCredits{
		ObjectMeta: metav1.ObjectMeta{Name: "a", UID: "uid-1", Generation: 4, ResourceVersion: "77"},
		Spec: creditsv1alpha1.UserCreditsSpec{UserID: "user_a", Credits: 8,
			Reservations: []creditsv1alpha1.Reservation{{ID: "rsv_1", Credits: 2, ExpiresAt: expires}}},
	}
	// A row of the credits table: a set of the available balance, the hold stays open.
	plain := Row{UserID: "user_a", Credits: 3, UpdatedAt: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)}
	next := patched(t, current, plain)
	if next.Spec.Credits != 3 || len(next.Spec.Reservations) != 1 {
		t.Errorf("plain overwrite: %+v", next.Spec)
	}
	if at, ok := account.ImportedAt(next); !ok || !at.Equal(plain.UpdatedAt) {
		t.Errorf("plain overwrite: ImportedAt %v %v", at, ok)
	}
	if a, err := account.Decode(next); err != nil || len(a.History()) != 1 || a.History()[0].Kind != account.OpSet {
		t.Errorf("plain overwrite: the history %+v, %v; want the set recorded", a.History(), err)
	}
	// A row of this operator's export: holds and lots as the row has them.
	full := exportRows()[2]
	full.UserID = "user_a"
	next = patched(t, current, full)
	if next.Spec.Credits != full.Credits || len(next.Spec.Reservations) != 1 || next.Spec.Reservations[0].ID != full.Holds[0].ID || len(next.Spec.Lots) != 2 {
		t.Errorf("full overwrite: %+v", next.Spec)
	}
	if _, err := account.Summary(next); err != nil {
		t.Errorf("full overwrite: %v", err)
	}
	if ex := ExistingOf(next); Decide(full, &ex, true) != AlreadyImported {
		t.Errorf("full overwrite: a re-run would write it again")
	}
	// And back to a plain balance: the holds and lots go.
	next = patched(t, next, Row{UserID: "user_a", Credits: 1, Holds: []creditsv1alpha1.Reservation{{ID: "rsv_9", Credits: 1, ExpiresAt: expires}}})
	if len(next.Spec.Lots) != 0 || len(next.Spec.Reservations) != 1 || next.Spec.Reservations[0].ID != "rsv_9" {
		t.Errorf("to holds alone: %+v", next.Spec)
	}

	// Every overwrite tests what it was decided on.
	patch, err := OverwritePatch(current, plain, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`{"op":"test","path":"/metadata/uid","value":"uid-1"}`, `{"op":"test","path":"/metadata/generation","value":4}`,
		`{"op":"test","path":"/metadata/resourceVersion","value":"77"}`} {
		if !strings.Contains(string(patch), want) {
			t.Errorf("the patch does not test %s:\n%s", want, patch)
		}
	}
	// An untrusted record is not overwritten.
	broken := current.DeepCopy()
	broken.Annotations = map[string]string{account.AppliedRequestsAnnotation: "{"}
	if _, err := OverwritePatch(broken, plain, time.Now()); err == nil {
		t.Error("an untrusted record was overwritten")
	}
}

func TestMarkPatch(t *testing.T) {
	current := &creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{Name: "a", UID: "uid-1", Generation: 3, ResourceVersion: "9"},
		Spec: creditsv1alpha1.UserCreditsSpec{UserID: "user_a", Credits: 5}}
	row := Row{UserID: "user_a", Credits: 5, UpdatedAt: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)}
	patch, err := MarkPatch(current, row)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := jsonpatch.DecodePatch(patch)
	doc, _ := json.Marshal(current)
	out, err := p.Apply(doc)
	if err != nil {
		t.Fatalf("%v\n%s", err, patch)
	}
	next := &creditsv1alpha1.UserCredits{}
	if err := json.Unmarshal(out, next); err != nil {
		t.Fatal(err)
	}
	// Metadata alone: the generation stays, and the record names it.
	if at, ok := account.ImportedAt(next); !ok || !at.Equal(row.UpdatedAt) || next.Spec.Credits != 5 {
		t.Errorf("marked: %v %v, %+v", at, ok, next.Spec)
	}
	if ex := ExistingOf(next); Decide(row, &ex, true) != AlreadyImported {
		t.Error("a marked user is not taken for imported")
	}
	if !strings.Contains(string(patch), `{"op":"test","path":"/metadata/generation","value":3}`) {
		t.Errorf("the mark does not test the generation: %s", patch)
	}
}

func TestRowOfTakesTheTimeTheStatusWillHave(t *testing.T) {
	source := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	obj := NewObject(Row{UserID: "user_a", Credits: 5, UpdatedAt: source}, "ns")
	obj.Generation = 1
	if r := RowOf(obj); !r.UpdatedAt.Equal(source) || r.Credits != 5 {
		t.Errorf("before the controller: %+v", r)
	}
	judged := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	obj.Status = creditsv1alpha1.UserCreditsStatus{ObservedGeneration: 1, UpdatedAt: &judged}
	if r := RowOf(obj); !r.UpdatedAt.Equal(judged.Time) {
		t.Errorf("once judged: %v, want the status' %v", r.UpdatedAt, judged)
	}
	obj.Generation = 2 // spent since; the controller has not judged it yet
	if r := RowOf(obj); !r.UpdatedAt.Equal(judged.Time) {
		t.Errorf("changed since the import: %v, want the status' %v", r.UpdatedAt, judged)
	}
}
