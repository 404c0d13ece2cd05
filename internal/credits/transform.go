package credits

import (
	"encoding/json"
	"strings"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// GrantKeyDigestAnnotation exists only in the informer cache, never in the apiserver: it
// stands in for AppliedGrantsAnnotation and lists the first grantDigestHex characters of
// each recorded grant key's hash. Reads never need grant records, and keeping them whole
// for 100,000 users cost 127 MiB of the operator's memory (make bench); the digest is
// enough to tell whether a key might be a grant's, and the store then reads the object
// from the apiserver before deciding.
const GrantKeyDigestAnnotation = "cache.credits.gitread.dev/grant-key-digest"

// grantDigestHex is 64 bits of the key hash: a false match only costs one apiserver read.
const grantDigestHex = 16

// CacheTransform is the informer cache's transform for UserCredits: it drops
// managedFields (the cache never needs them; they are most of an object's size), replaces
// the grant key records with their digest, and keeps of the annotations only what
// decisions read: the requests ledger, the closed holds, the history's sequence number and
// the chunk being filled. Other annotations (the rest of the history, a GitOps tool's, a
// client-side kubectl apply's copy of the whole object) are for other readers. The kept
// ones go into a map of their own size: a map emptied in place keeps the room it had.
// Other objects pass through.
func CacheTransform(in any) (any, error) {
	obj, ok := in.(*creditsv1alpha1.UserCredits)
	if !ok {
		return in, nil
	}
	obj.ManagedFields = nil
	if obj.Annotations == nil {
		return obj, nil
	}
	// Non-nil even when nothing is kept: a write adds its annotations into the map the
	// object has, and an empty cached map must not be taken for an object without any.
	kept := make(map[string]string, 4)
	for _, name := range []string{AppliedRequestsAnnotation, ClosedReservationsAnnotation, HistorySeqAnnotation, currentChunk(obj.Annotations)} {
		if v, ok := obj.Annotations[name]; ok && name != "" {
			kept[name] = v
		}
	}
	if grants, ok := obj.Annotations[AppliedGrantsAnnotation]; ok {
		kept[GrantKeyDigestAnnotation] = grantDigest(grants)
	}
	obj.Annotations = kept
	return obj, nil
}

// grantDigest lists the hash prefixes of the keys in a grant ledger.
func grantDigest(ledger string) string {
	var entries []appliedRequest
	if json.Unmarshal([]byte(ledger), &entries) != nil {
		return ""
	}
	var b strings.Builder
	b.Grow(len(entries) * (grantDigestHex + 1))
	for _, e := range entries {
		if len(e.Key) >= grantDigestHex {
			b.WriteString(e.Key[:grantDigestHex])
			b.WriteByte(',')
		}
	}
	return b.String()
}

// needsFreshRead reports whether deciding op needs what the cached obj does not hold: the
// grant key records, which it holds only as a digest. That is every keyed grant (its new
// record is written with the old ones), and any keyed operation whose key might be a
// grant's (a replay or a 409).
func needsFreshRead(cached *creditsv1alpha1.UserCredits, op Operation) bool {
	if op.IdempotencyKey == "" {
		return false
	}
	if op.Kind == OpGrant {
		return true
	}
	digest := cached.Annotations[GrantKeyDigestAnnotation]
	return digest != "" && strings.Contains(digest, hashKey(op.IdempotencyKey)[:grantDigestHex]+",")
}
