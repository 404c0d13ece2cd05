package account

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

func TestAccountCacheFormDigestsGrantKeys(t *testing.T) {
	now := time.Now()
	r := newRecord(t, 0)
	for i := range 5 {
		if _, _, err := r.do(Operation{Kind: OpGrant, Amount: 1, IdempotencyKey: fmt.Sprint("cs_", i)}, now); err != nil {
			t.Fatal(err)
		}
	}
	grants := r.annotation(AppliedGrantsAnnotation)
	cached := r.obj.DeepCopy()
	CacheForm(cached)
	if cached.Annotations[AppliedGrantsAnnotation] != "" {
		t.Fatalf("cached annotations keep the grant records: %v", cached.Annotations)
	}
	digest := cached.Annotations[GrantKeyDigestAnnotation]
	if len(digest) != 5*(digestChars+1) || len(digest) >= len(grants)/2 {
		t.Fatalf("digest %q (%d bytes for %d bytes of records)", digest, len(digest), len(grants))
	}
	twice := cached.DeepCopy()
	CacheForm(twice) // client-go may transform an object again
	if !maps.Equal(twice.Annotations, cached.Annotations) {
		t.Fatalf("the cache's form of the cache's form %v, want %v", twice.Annotations, cached.Annotations)
	}
	a, err := Decode(cached)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		op    Operation
		whole bool
	}{
		{Operation{Kind: OpGrant, Amount: 1, IdempotencyKey: "cs_new"}, true}, // a grant writes all records
		{Operation{Kind: OpConsume, Amount: 1, IdempotencyKey: "cs_3"}, true}, // a grant's key: a 409 to decide
		{Operation{Kind: OpConsume, Amount: 1, IdempotencyKey: "gen-1"}, false},
		{Operation{Kind: OpGrant, Amount: 1}, false},
		{Operation{Kind: OpSet, Amount: 1, IdempotencyKey: "cs_0"}, true},
	} {
		if _, _, _, err := a.Apply(c.op, now, r.rules); errors.Is(err, ErrNeedWholeRecord) != c.whole {
			t.Errorf("%+v on the cache's form: %v, want ErrNeedWholeRecord %v", c.op, err, c.whole)
		}
	}
}

func TestAccountCacheFormKeepsOnlyWhatDecisionsRead(t *testing.T) {
	r := newRecord(t, 0)
	for range 35 {
		if _, _, err := r.do(Operation{Kind: OpGrant, Amount: 1}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	r.obj.Annotations["kubectl.kubernetes.io/last-applied-configuration"] = strings.Repeat("x", 4096)
	r.obj.Annotations["argocd.argoproj.io/tracking-id"] = "app:credits.gitread.dev/UserCredits:ns/alice"
	r.obj.Annotations[ClosedHoldsAnnotation] = "[]"
	cached := r.obj.DeepCopy()
	CacheForm(cached)
	want := map[string]string{
		HistorySeqAnnotation: "35", HistoryChunkAnnotation(3): r.annotation(HistoryChunkAnnotation(3)),
		WriteSeqAnnotation: "35", ClosedHoldsAnnotation: "[]", GrantKeyDigestAnnotation: "",
	}
	if !maps.Equal(cached.Annotations, want) {
		t.Fatalf("cached annotations %v, want %v", cached.Annotations, want)
	}
	other := &creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"argocd.argoproj.io/tracking-id": "x"}}}
	CacheForm(other)
	if a := other.Annotations; len(a) != 1 || a[GrantKeyDigestAnnotation] != "" {
		t.Fatalf("an object with only foreign annotations is cached with %#v, want only the (empty) grant digest", a)
	}
	none := &creditsv1alpha1.UserCredits{}
	if CacheForm(none); none.Annotations != nil {
		t.Fatalf("an object without annotations is cached with %#v", none.Annotations)
	}
}

// TestAccountPatchTestsWhatTheDecisionRead: every write tests the UID, the generation, the
// write sequence and the history's count (or, on a record never written, the
// resourceVersion), and escapes annotation names as JSON pointers.
func TestAccountPatchTestsWhatTheDecisionRead(t *testing.T) {
	for _, c := range []struct {
		name    string
		current creditsv1alpha1.UserCredits
		want    string
	}{{
		name: "written before",
		current: creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{UID: "u-1", Generation: 7, ResourceVersion: "99",
			Labels: map[string]string{"team": "a"}, Annotations: map[string]string{HistorySeqAnnotation: "12", WriteSeqAnnotation: "30"}}},
		want: `[{"op":"test","path":"/metadata/uid","value":"u-1"},{"op":"test","path":"/metadata/generation","value":7},` +
			`{"op":"test","path":"/metadata/annotations/credits.gitread.dev~1write-seq","value":"30"},` +
			`{"op":"test","path":"/metadata/annotations/credits.gitread.dev~1history-seq","value":"12"}]`,
	}, {
		name: "written by an earlier version: its history count",
		current: creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{UID: "u-1", Generation: 7, Labels: map[string]string{"team": "a"},
			Annotations: map[string]string{HistorySeqAnnotation: "12"}}},
		want: `[{"op":"test","path":"/metadata/uid","value":"u-1"},{"op":"test","path":"/metadata/generation","value":7},` +
			`{"op":"test","path":"/metadata/annotations/credits.gitread.dev~1history-seq","value":"12"}]`,
	}, {
		name: "never written",
		current: creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{UID: "u-2", Generation: 1, ResourceVersion: "5",
			Labels: map[string]string{"team": "a"}}},
		want: `[{"op":"test","path":"/metadata/uid","value":"u-2"},{"op":"test","path":"/metadata/generation","value":1},` +
			`{"op":"test","path":"/metadata/resourceVersion","value":"5"}]`,
	}, {
		name:    "no labels: a write may make the map (a name or payment label), so it tests there is none",
		current: creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{UID: "u-2", Generation: 1, ResourceVersion: "5"}},
		want: `[{"op":"test","path":"/metadata/uid","value":"u-2"},{"op":"test","path":"/metadata/generation","value":1},` +
			`{"op":"test","path":"/metadata/resourceVersion","value":"5"},{"op":"test","path":"/metadata/labels","value":null}]`,
	}} {
		got, _ := json.Marshal(Tests(&c.current))
		if string(got) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
	r := newRecord(t, 3)
	r.obj.Spec.Reservations = reservationsOf(Hold{ID: "h", Credits: 2, ExpiresAt: time.Now().Add(time.Minute)})
	a := r.account()
	next, _, _, err := a.Apply(Operation{Kind: OpRelease, ReservationID: "h"}, time.Now(), r.rules)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := Patch(r.obj, next)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(ops)
	for _, want := range []string{`{"op":"add","path":"/metadata/annotations","value":{}}`, `{"op":"add","path":"/spec/credits","value":5}`,
		`{"op":"remove","path":"/spec/reservations"}`, `"path":"/metadata/annotations/credits.gitread.dev~1closed-reservations"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("release patch %s lacks %s", data, want)
		}
	}
}

// TestAccountDamageIsReportedAndRepaired: parts that do not guard money (closed holds, the
// history, the write sequence) read as empty when damaged, are listed, and the next write
// that changes them writes them whole.
func TestAccountDamageIsReportedAndRepaired(t *testing.T) {
	now := time.Now()
	r := newRecord(t, 5)
	r.obj.Annotations = map[string]string{ClosedHoldsAnnotation: "{", HistorySeqAnnotation: "x", WriteSeqAnnotation: "-1"}
	want := []string{ClosedHoldsAnnotation, HistorySeqAnnotation, WriteSeqAnnotation}
	if got := r.account().Damage(); !slicesEqual(got, want) {
		t.Fatalf("damage %v, want %v", got, want)
	}
	if _, _, err := r.do(reserve("h", 1), now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.do(Operation{Kind: OpRelease, ReservationID: "h"}, now); err != nil {
		t.Fatal(err)
	}
	if got := r.account().Damage(); len(got) != 0 {
		t.Fatalf("after two writes the damage is %v", got)
	}
}

func slicesEqual(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

// TestAccountObjectsUnderTheDerivedNameAreLabelled: the API's objects carry NameLabel, and
// a write of an object under its user's derived name adds it; an object under another name
// never gets it (a warming replica lists those by its absence).
func TestAccountObjectsUnderTheDerivedNameAreLabelled(t *testing.T) {
	a, _ := Decode(&creditsv1alpha1.UserCredits{Spec: creditsv1alpha1.UserCreditsSpec{UserID: "user_A", Credits: 3}})
	created, err := NewObject(ObjectNameForUser("user_A"), "ns", a)
	if err != nil || created.Labels[NameLabel] != NameDerived {
		t.Fatalf("created: %+v, %v", created, err)
	}
	for name, want := range map[string]bool{ObjectNameForUser("user_A"): true, "alice": false} {
		current := &creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: creditsv1alpha1.UserCreditsSpec{UserID: "user_A", Credits: 3}}
		ops, err := Patch(current, a)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(ops)
		got := strings.Contains(string(data), `{"op":"add","path":"/metadata/labels/credits.gitread.dev~1name","value":"derived"}`)
		if got != want || strings.Contains(string(data), `"/metadata/labels"`) != want {
			t.Errorf("a write of %s: %s; labelled %v, want %v", name, data, got, want)
		}
		current.Labels = map[string]string{NameLabel: NameDerived}
		if ops, _ := Patch(current, a); strings.Contains(fmt.Sprint(ops), "labels") {
			t.Errorf("a write of labelled %s writes the label again: %v", name, ops)
		}
	}
}
