package main

import (
	"bytes"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/internal/migrate"
	"github.com/gitread/usercredits-operator/internal/operator"
)

// TestSeededRecordsReadAsTheOperatorWritesThem: the scale run's seeded annotations are in
// the operator's format: nothing damaged, every seeded grant key held, the whole history
// read with the seeded balance.
func TestSeededRecordsReadAsTheOperatorWritesThem(t *testing.T) {
	now := time.Now()
	user := userID("scale", 7)
	annotations := map[string]string{account.AppliedGrantsAnnotation: grantLedger(user, scaleGrantKeys, now)}
	fullHistory(annotations, 5, now)
	obj := &creditsv1alpha1.UserCredits{Spec: creditsv1alpha1.UserCreditsSpec{UserID: user, Credits: 5}}
	obj.Annotations = annotations
	a, err := account.Decode(obj)
	if err != nil || len(a.Damage()) != 0 {
		t.Fatalf("seeded record: %v, damage %v", err, a.Damage())
	}
	for i := range scaleGrantKeys {
		if !a.HoldsGrantKey(seedGrantKey(user, i), now, account.DefaultSettings()) {
			t.Errorf("seeded grant key %d is not held", i)
		}
	}
	h := a.History()
	if len(h) != account.HistoryLength {
		t.Fatalf("seeded history: %d entries, want %d", len(h), account.HistoryLength)
	}
	for _, e := range h {
		if e.Balance != 5 || e.At.After(now) || now.Sub(e.At) > historyEntries*time.Minute {
			t.Fatalf("seeded history entry %+v: want balance 5 within the last %d minutes", e, historyEntries)
		}
	}
}

// TestRegistryKey: the seeder writes where kube-apiserver (its default --etcd-prefix) keeps
// a namespaced custom resource, /registry/<group>/<plural>/<namespace>/<name>.
func TestRegistryKey(t *testing.T) {
	got := registryKey("scale", "user-scale-000000-3be4660e62d13d72")
	if want := "/registry/credits.gitread.dev/usercredits/scale/user-scale-000000-3be4660e62d13d72"; got != want {
		t.Fatalf("registryKey = %q, want %q", got, want)
	}
}

// TestStoredValueDecodesAsTheSeededObject: a value written straight into etcd decodes, with
// the operator's scheme, as the object it was made of plus what the apiserver adds on create
// (apiVersion and kind, uid, creationTimestamp, generation 1) and without a resourceVersion
// (etcd's revision is that), ended by a newline as the apiserver's encoder ends it.
func TestStoredValueDecodesAsTheSeededObject(t *testing.T) {
	// Times are stored to the second: the object's are whole, the create's is not.
	now := time.Date(2026, 11, 30, 13, 24, 39, 0, time.UTC)
	obj := judged(seededObject("scale", userID("scale", 7), seeding{balance: 5, grantKeys: scaleGrantKeys, history: true, lots: 3}, now), now)
	want := obj.DeepCopy()
	value, err := storedValue(obj, "c33e8b1b-234e-4b39-a6c3-a9981cc6a320", now.Add(500*time.Millisecond), seedManager)
	if err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(obj, want) {
		t.Fatal("storedValue changed the object it was given")
	}
	if !bytes.HasSuffix(value, []byte("}\n")) || bytes.Contains(value, []byte(`"resourceVersion"`)) {
		t.Fatalf("stored value does not end in a newline or names a resourceVersion: %s", value)
	}
	decoded, gvk, err := serializer.NewCodecFactory(operator.NewScheme()).UniversalDeserializer().Decode(value, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if gvk.GroupVersion() != creditsv1alpha1.GroupVersion || gvk.Kind != "UserCredits" {
		t.Fatalf("stored as %v", gvk)
	}
	got := decoded.(*creditsv1alpha1.UserCredits)
	if got.UID != "c33e8b1b-234e-4b39-a6c3-a9981cc6a320" || got.Generation != 1 || !got.CreationTimestamp.Equal(&metav1.Time{Time: now}) {
		t.Fatalf("uid %q, generation %d, creationTimestamp %v", got.UID, got.Generation, got.CreationTimestamp)
	}
	if len(got.ManagedFields) != 2 {
		t.Fatalf("%d managedFields entries, want the create's and the status write's", len(got.ManagedFields))
	}
	got.TypeMeta, got.UID, got.Generation, got.CreationTimestamp, got.ManagedFields = metav1.TypeMeta{}, "", 0, metav1.Time{}, nil
	want.Generation = 0
	if !equality.Semantic.DeepEqual(got, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
	}
}

// apiCreateFields is the managedFields entry kube-apiserver v1.37 recorded for seedOne's
// create of a scale user (read back from its etcd): the seeder's must name the same fields.
const apiCreateFields = `{"f:metadata":{"f:annotations":{".":{},"f:credits.gitread.dev/applied-grants":{},"f:credits.gitread.dev/history-0":{},` +
	`"f:credits.gitread.dev/history-1":{},"f:credits.gitread.dev/history-10":{},"f:credits.gitread.dev/history-2":{},"f:credits.gitread.dev/history-3":{},` +
	`"f:credits.gitread.dev/history-4":{},"f:credits.gitread.dev/history-5":{},"f:credits.gitread.dev/history-6":{},"f:credits.gitread.dev/history-7":{},` +
	`"f:credits.gitread.dev/history-8":{},"f:credits.gitread.dev/history-9":{},"f:credits.gitread.dev/history-seq":{}},` +
	`"f:labels":{".":{},"f:credits.gitread.dev/name":{}}},"f:spec":{".":{},"f:credits":{},"f:userID":{}}}`

// TestManagedFieldsAreTheAPIServers: the create entry of a seeded scale user is the one
// the apiserver records for the same create through the API; the status write's names the
// Valid condition by its key and every status field written; an object without a status
// (an import's) has the create's entry alone; a list of lots is atomic (one field).
func TestManagedFieldsAreTheAPIServers(t *testing.T) {
	now := time.Now()
	obj := judged(seededObject("scale", userID("scale", 0), seeding{balance: 5, grantKeys: scaleGrantKeys, history: true}, now), now)
	mf, err := managedFields(obj, seedManager, metav1.NewTime(now))
	if err != nil {
		t.Fatal(err)
	}
	if len(mf) != 2 || mf[0].Subresource != "" || mf[1].Subresource != "status" || mf[0].Manager != seedManager || mf[0].Operation != metav1.ManagedFieldsOperationUpdate {
		t.Fatalf("entries %+v", mf)
	}
	if got := string(mf[0].FieldsV1.Raw); got != apiCreateFields {
		t.Errorf("create entry\n%s\nwant the apiserver's\n%s", got, apiCreateFields)
	}
	status := &fieldpath.Set{}
	if err := status.FromJSON(bytes.NewReader(mf[1].FieldsV1.Raw)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".status.credits", ".status.updatedAt", ".status.observedGeneration", `.status.conditions[type="Valid"].reason`} {
		found := false
		status.Iterate(func(p fieldpath.Path) { found = found || p.String() == want })
		if !found {
			t.Errorf("the status entry does not name %s: %s", want, mf[1].FieldsV1.Raw)
		}
	}

	imported := migrate.NewObject(migrate.Row{UserID: "user_1", Credits: 3, UpdatedAt: now}, "ns")
	imported.Spec.Lots = seededLots(seeding{balance: 3, lots: 2}, now)
	mf, err = managedFields(imported, seedManager, metav1.NewTime(now))
	if err != nil {
		t.Fatal(err)
	}
	if len(mf) != 1 || mf[0].Subresource != "" {
		t.Fatalf("an object without a status: entries %+v, want the create's alone", mf)
	}
	if !bytes.Contains(mf[0].FieldsV1.Raw, []byte(`"f:lots":{}`)) {
		t.Errorf("lots are an atomic list, owned as one field: %s", mf[0].FieldsV1.Raw)
	}
}
