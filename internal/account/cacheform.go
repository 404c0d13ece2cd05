package account

import (
	"strings"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// CacheForm reduces obj, in place, to what decisions read: the informer cache's form of
// the record. Kept: the request keys, the closed holds, the write sequence, the history's
// count and the chunk being filled (enough to append). The grant keys become their digest
// (GrantKeyDigestAnnotation): reads never need them, and keeping them whole for 100,000
// users cost 127 MiB of the operator's memory (make bench); a decision that needs them
// gets ErrNeedWholeRecord and is decided again on the record read from the apiserver.
// CreditGrants' keys are kept whole besides (GitOpsKeysAnnotation), for the index of them.
// Other annotations (the rest of the history, a GitOps tool's, kubectl's copy of the whole
// object) are for other readers; the damaged history chunks among them are listed
// (cacheDamageAnnotation), so that what decodes this form (the controller, which sets
// Intact) still reports them. The import's record (ImportedAnnotation) is kept until the
// controller has written the status it gives a time to. The kept ones go into a map of their own size: a map emptied
// in place keeps the room it had. It is idempotent, as client-go requires of a transform
// (an object may pass through it again): an object carrying the digest is in this form
// already, since no stored object can carry that key.
func CacheForm(obj *creditsv1alpha1.UserCredits) {
	ann := obj.Annotations
	if ann == nil {
		return // nothing stored: no keys, no history, whole as it is
	}
	if _, done := ann[GrantKeyDigestAnnotation]; done {
		return
	}
	// What is kept is gathered first, so that the map is made at its size: a map made for
	// more than 8 entries takes twice the room, for every one of 100,000 cached objects.
	kept := make([][2]string, 0, 9)
	keep := func(name, value string) { kept = append(kept, [2]string{name, value}) }
	names := []string{AppliedRequestsAnnotation, ClosedHoldsAnnotation, WriteSeqAnnotation, HistorySeqAnnotation}
	if importedWanted(obj) {
		names = append(names, ImportedAnnotation)
	}
	for _, name := range names {
		if v, ok := ann[name]; ok {
			keep(name, v)
		}
	}
	h := decodeHistory(ann)
	filling := h.filling()
	text, fillingKept := h.chunks[filling]
	if fillingKept {
		keep(HistoryChunkAnnotation(filling), text) // damaged or not: decoding it judges it
	}
	var dropped []string
	for k := range historyChunks {
		if h.damaged&(1<<k) != 0 && !(fillingKept && k == filling) {
			dropped = append(dropped, HistoryChunkAnnotation(k))
		}
	}
	if len(dropped) > 0 {
		keep(cacheDamageAnnotation, strings.Join(dropped, ","))
	}
	// The digest is always there, empty without grants: it marks the form, so that an
	// account decoded from it never takes "no grant keys held" for "no grant keys".
	digest := ""
	if grants, ok := ann[AppliedGrantsAnnotation]; ok {
		if entries, damaged := decodePart(ann, AppliedGrantsAnnotation, decodeKeys); !damaged {
			digest = digestOf(entries)
			if keys := gitOpsKeysOf(entries); keys != "" {
				keep(GitOpsKeysAnnotation, keys)
			}
		} else {
			keep(AppliedGrantsAnnotation, grants) // damaged: kept as is, so that decoding it says so
		}
	}
	keep(GrantKeyDigestAnnotation, digest)
	// Non-nil even when nothing else is kept: a write adds its annotations into the map the
	// object has, and an empty cached map must not be taken for an object without any.
	form := make(map[string]string, len(kept))
	for _, kv := range kept {
		form[kv[0]] = kv[1]
	}
	obj.Annotations = form
}
