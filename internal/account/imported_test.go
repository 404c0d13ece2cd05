package account

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

func TestImportedAnnotation(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 34, 56, 789, time.FixedZone("x", 7200))
	text := Imported{Row: "0123456789abcdef", Generation: 2, UpdatedAt: &at}.Encode()
	if want := `{"row":"0123456789abcdef","generation":2,"updatedAt":"2024-05-01T10:34:56Z"}`; text != want {
		t.Fatalf("Encode = %s, want %s", text, want)
	}
	obj := &creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{Generation: 2, Annotations: map[string]string{ImportedAnnotation: text}}}
	if got, ok := ImportedAt(obj); !ok || !got.Equal(at.Truncate(time.Second)) {
		t.Errorf("ImportedAt = %v, %v", got, ok)
	}
	obj.Generation = 3 // the spec changed since the import wrote it
	if _, ok := ImportedAt(obj); ok {
		t.Error("ImportedAt after the spec changed")
	}
	if i, ok := ImportedOf(obj); !ok || i.Row != "0123456789abcdef" {
		t.Errorf("ImportedOf = %+v, %v: the row stays recorded", i, ok)
	}
	for _, bad := range []string{"", "{", `{"row":"","generation":1}`, `{"row":"x","generation":0}`, `{"row":"` + strings.Repeat("x", 600) + `","generation":1}`} {
		obj.Annotations[ImportedAnnotation] = bad
		if i, ok := ImportedOf(obj); ok {
			t.Errorf("ImportedOf(%.40q) = %+v, want none", bad, i)
		}
	}
	noTime := Imported{Row: "r", Generation: 3}.Encode()
	obj.Annotations[ImportedAnnotation] = noTime
	if _, ok := ImportedAt(obj); ok || strings.Contains(noTime, "updatedAt") {
		t.Errorf("a row without a time: %s gives a time", noTime)
	}
}

// TestCacheFormKeepsTheImportUntilTheStatusIsWritten: the controller reads the import's
// time from the cache until it has written the status of that generation; then the cache
// lets it go.
func TestCacheFormKeepsTheImportUntilTheStatusIsWritten(t *testing.T) {
	at := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	text := Imported{Row: "r", Generation: 1, UpdatedAt: &at}.Encode()
	obj := &creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{Generation: 1, Annotations: map[string]string{ImportedAnnotation: text}}}
	fresh := obj.DeepCopy()
	CacheForm(fresh)
	if fresh.Annotations[ImportedAnnotation] != text {
		t.Fatalf("before its status: cached %v", fresh.Annotations)
	}
	obj.Status.ObservedGeneration = 1
	CacheForm(obj)
	if _, ok := obj.Annotations[ImportedAnnotation]; ok {
		t.Fatalf("after its status: cached %v", obj.Annotations)
	}
}
