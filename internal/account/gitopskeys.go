package account

import (
	"strings"
	"time"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// A CreditGrant is applied once under its name (its grant key), to one user: a CreditGrant
// deleted and created again under the same name for another user must find that the name
// was applied. The key is in the first user's grant ledger only, so the informer cache
// keeps the hashes of the CreditGrant keys each record holds (a handful, beside the digest
// of the others), and the store indexes them: which users' records hold a key is one map
// lookup, confirmed by reading those records whole.

// GitOpsKeysAnnotation exists only in the informer cache, never in the apiserver: the
// hashes of the CreditGrant keys in the record's grant ledger, comma-separated (CacheForm).
const GitOpsKeysAnnotation = cacheOnly + "gitops-keys"

// KeyHash is what a ledger, and GitOpsKeys, hold of an Idempotency-Key.
func KeyHash(key string) string { return hashKey(key) }

// GitOpsKeys lists the hashes of the CreditGrant keys obj's grant ledger holds, whichever
// form obj is in (as stored, or as the informer cache keeps it), however old: nil when
// none, or when the ledger cannot be read.
func GitOpsKeys(obj *creditsv1alpha1.UserCredits) []string {
	if text, ok := obj.Annotations[GitOpsKeysAnnotation]; ok {
		return strings.Split(strings.TrimSuffix(text, ","), ",")
	}
	entries, damaged := decodePart(obj.Annotations, AppliedGrantsAnnotation, decodeKeys)
	if damaged {
		return nil
	}
	if text := gitOpsKeysOf(entries); text != "" {
		return strings.Split(strings.TrimSuffix(text, ","), ",")
	}
	return nil
}

// gitOpsKeysOf is the hashes of the CreditGrant keys among entries, each followed by a comma.
func gitOpsKeysOf(entries []appliedKey) string {
	var b strings.Builder
	for _, e := range entries {
		if e.Op == opCreditGrant {
			b.WriteString(e.Key)
			b.WriteByte(',')
		}
	}
	return b.String()
}

// HoldsGrantKey reports whether a's grant ledger holds key, applied within the grant-key
// retention at now: a grant with key would be answered by it rather than applied. The
// account must be read whole (Decode of the stored record): the cache's form does not hold
// the grant ledger.
func (a Account) HoldsGrantKey(key string, now time.Time, rules Settings) bool {
	_, found, mightHold := a.grants.find(hashKey(key), now.Add(-rules.GrantKeyRetention))
	return found || mightHold
}
