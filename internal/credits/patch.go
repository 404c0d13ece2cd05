package credits

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// jsonPatchOp is one RFC 6902 operation.
type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// writePatch is the JSON patch that writes b over current. Its first operations are tests,
// the preconditions the apiserver checks against the stored object as it applies the patch:
//
//   - metadata.uid, so that an object deleted and created again under the same name
//     (kubectl replace --force, a GitOps tool), which starts again at generation 1 and
//     may carry the old annotations, is never taken for the one b was decided on;
//   - metadata.generation, which moves with every change of spec by anyone (another
//     replica, kubectl, a GitOps tool), so the balance and holds are what b was decided on;
//   - the store's write sequence (the history sequence annotation), which every write of
//     this store moves, from any replica, so the key ledgers and the history are too.
//
// Unlike a resourceVersion precondition, these are not moved by the controller's status
// writes, which change nothing a decision reads: a user's write right after their previous
// one would otherwise meet a 409 from that write's status update and cost the apiserver a
// conflict, a read and a second patch. An object this store has never written (created by
// kubectl or a GitOps tool) has no sequence yet; its first write tests the resourceVersion
// instead. Edits of the store's annotations alone, by hand, between a read and a write are
// not detected; docs/guarantees.md says so.
func writePatch(current *creditsv1alpha1.UserCredits, b batchDecision) ([]byte, error) {
	ops := []jsonPatchOp{
		{Op: "test", Path: "/metadata/uid", Value: current.UID},
		{Op: "test", Path: "/metadata/generation", Value: current.Generation},
	}
	if seq, ok := current.Annotations[HistorySeqAnnotation]; ok {
		ops = append(ops, jsonPatchOp{Op: "test", Path: annotationPath(HistorySeqAnnotation), Value: seq})
	} else {
		ops = append(ops, jsonPatchOp{Op: "test", Path: "/metadata/resourceVersion", Value: current.ResourceVersion})
	}
	if len(b.annotations) > 0 && current.Annotations == nil {
		ops = append(ops, jsonPatchOp{Op: "add", Path: "/metadata/annotations", Value: map[string]string{}})
	}
	names := make([]string, 0, len(b.annotations))
	for name := range b.annotations {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		ops = append(ops, jsonPatchOp{Op: "add", Path: annotationPath(name), Value: b.annotations[name]})
	}
	ops = append(ops, jsonPatchOp{Op: "add", Path: "/spec/credits", Value: b.credits})
	if b.holdsChanged {
		switch {
		case len(b.holds) > 0:
			ops = append(ops, jsonPatchOp{Op: "add", Path: "/spec/reservations", Value: b.holds})
		case len(current.Spec.Reservations) > 0:
			ops = append(ops, jsonPatchOp{Op: "remove", Path: "/spec/reservations"})
		}
	}
	return json.Marshal(ops)
}

// annotationPath is the JSON pointer (RFC 6901) to an annotation.
func annotationPath(name string) string {
	return "/metadata/annotations/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(name)
}

// mayBeStale reports whether a write may have been refused because the object changed
// since the state it was decided on: a resourceVersion conflict, a 404 (it was deleted), or
// a 422 Invalid, which is how the apiserver answers a failed test of writePatch. A 422 is
// also how it answers a write that the object's validation refuses, with nothing in the
// answer to tell the two apart, so the store confirms a 422 on its next read (testedState).
func mayBeStale(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsNotFound(err) || apierrors.IsInvalid(err)
}

// testedState is what writePatch's tests compare, as one comparable value: a write refused
// with 422 was stale when the next read shows a different testedState, and was refused for
// itself when it shows the same.
func testedState(obj *creditsv1alpha1.UserCredits) string {
	if seq, ok := obj.Annotations[HistorySeqAnnotation]; ok {
		return fmt.Sprintf("uid %s, generation %d, sequence %s", obj.UID, obj.Generation, seq)
	}
	return fmt.Sprintf("uid %s, generation %d, resourceVersion %s", obj.UID, obj.Generation, obj.ResourceVersion)
}
