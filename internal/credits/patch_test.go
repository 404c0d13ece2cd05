package credits

import (
	"encoding/json"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// TestWritePatchPreconditions: the patch tests the UID, the generation and the store's write
// sequence (or, on an object the store never wrote, the resourceVersion) before it writes,
// and escapes annotation names as JSON pointers.
func TestWritePatchPreconditions(t *testing.T) {
	cases := []struct {
		name    string
		current creditsv1alpha1.UserCredits
		b       batchDecision
		want    string
	}{{
		name: "written before: generation and sequence",
		current: creditsv1alpha1.UserCredits{
			ObjectMeta: metav1.ObjectMeta{UID: "u-1", Generation: 7, ResourceVersion: "99", Annotations: map[string]string{HistorySeqAnnotation: "12"}},
			Spec:       creditsv1alpha1.UserCreditsSpec{Reservations: []creditsv1alpha1.Reservation{{ID: "r1", Credits: 2}}},
		},
		b: batchDecision{credits: 0, holdsChanged: true, annotations: map[string]string{HistorySeqAnnotation: "13"}},
		want: `[{"op":"test","path":"/metadata/uid","value":"u-1"},` +
			`{"op":"test","path":"/metadata/generation","value":7},` +
			`{"op":"test","path":"/metadata/annotations/credits.gitread.dev~1history-seq","value":"12"},` +
			`{"op":"add","path":"/metadata/annotations/credits.gitread.dev~1history-seq","value":"13"},` +
			`{"op":"add","path":"/spec/credits","value":0},` +
			`{"op":"remove","path":"/spec/reservations"}]`,
	}, {
		name:    "never written by the store: generation and resourceVersion, annotations created",
		current: creditsv1alpha1.UserCredits{ObjectMeta: metav1.ObjectMeta{UID: "u-2", Generation: 1, ResourceVersion: "5"}},
		b:       batchDecision{credits: 4, annotations: map[string]string{"a~b/c": ""}},
		want: `[{"op":"test","path":"/metadata/uid","value":"u-2"},` +
			`{"op":"test","path":"/metadata/generation","value":1},` +
			`{"op":"test","path":"/metadata/resourceVersion","value":"5"},` +
			`{"op":"add","path":"/metadata/annotations","value":{}},` +
			`{"op":"add","path":"/metadata/annotations/a~0b~1c","value":""},` +
			`{"op":"add","path":"/spec/credits","value":4}]`,
	}}
	for _, c := range cases {
		got, err := writePatch(&c.current, c.b)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
		var ops []jsonPatchOp
		if err := json.Unmarshal(got, &ops); err != nil {
			t.Errorf("%s: not a JSON patch: %v", c.name, err)
		}
	}
}
