package account

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Applied Idempotency-Keys are kept in two ledgers, each written in the same update as the
// balance it accounts for, so the two cannot disagree:
//   - grants: grant keys, for the grant-key retention (30 days by default) and up to
//     GrantKeysMaxEntries of them. Only callers allowed to grant can add to it, so no
//     end-user request can push a checkout's key out;
//   - requests: the keys of every other operation, the most recent RequestKeysMaxEntries and
//     none older than RequestKeysMaxAge.
//
// A retry after its key is forgotten is applied again.
const (
	RequestKeysMaxEntries = 100
	RequestKeysMaxAge     = 24 * time.Hour
	GrantKeysMaxEntries   = 1000
)

// appliedKey is one entry of a key ledger (stored as ledgercodec.go says).
type appliedKey struct {
	Key    string // hash of the Idempotency-Key (hashKey): bounded size, no caller data stored
	Op     OpKind
	Amount int64
	Result int64
	At     int64  // unix seconds
	ID     string // the hold or lot the operation made or named
	Terms  string // a grant's lot terms, hashed; empty: the defaults
}

// opCreditGrant is how a ledger records the key of a CreditGrant's grant (a grant of source
// gitops): the informer cache keeps these whole (GitOpsKeys), so that a CreditGrant name
// applied to one user is found when it is used for another. Shorter than "grant", so that
// the ledger's bound holds whatever its grants are.
const opCreditGrant OpKind = "cg"

// ledgerOp is what a ledger records as op's kind.
func ledgerOp(op Operation) OpKind {
	if op.Kind == OpGrant && op.Terms.Source == SourceGitOps {
		return opCreditGrant
	}
	return op.Kind
}

// keyLedger is one ledger of applied keys, oldest first.
type keyLedger struct {
	entries []appliedKey
	// digest, in the informer cache's form of the grant ledger, holds only the first
	// digestChars characters of each key hash (codec.go): enough to tell that a key is
	// certainly not a grant's; a possible match needs the whole record.
	digest  string
	partial bool
	damaged bool
	changed bool
}

// captureAllAmount is the amount a ledger records for a capture of the whole hold, so that
// it and a capture of an explicit amount are different requests.
const captureAllAmount = -1

// requested is the amount op asked for, as a ledger records it.
func requested(op Operation) int64 {
	if op.Kind == OpCapture && op.CaptureAll {
		return captureAllAmount
	}
	return op.Amount
}

// hashKey is what a ledger stores of an Idempotency-Key: the first 96 bits of its SHA-256,
// in 16 characters of unpadded base64url.
//
// Why 96 bits is safe: a key is only ever compared with the keys of one user's ledgers, at
// most RequestKeysMaxEntries + GrantKeysMaxEntries (1,100) entries. A new key falsely
// matches one of them with probability at most 1,100 / 2^96 < 2^-85: across 10^6 users
// making 10^6 keyed requests each over the service's life, below 2^-45 in all. A caller who
// chooses keys on purpose to collide (two keys of their own with one hash, so that the
// second is answered as a replay of the first instead of applied) needs a SHA-256 birthday
// search of about 2^48 hashes for each such pair, far more than what any one request is
// worth; at 64 bits it would take 2^32, seconds on a GPU. Records written before held 128
// bits as 32 hex digits: their first 96 are the same hash (decodeKeysJSON).
func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return keyHashOf(sum[:])
}

// keyChars is the length of a stored key hash: 96 bits in base64url.
const keyChars = 16

// keyHashOf is the stored form of a key's SHA-256 (at least its first 12 bytes).
func keyHashOf(sum []byte) string { return base64.RawURLEncoding.EncodeToString(sum[:keyChars*6/8]) }

// validKeyHash reports whether s is keyChars characters of base64url: what keyHashOf makes.
func validKeyHash(s string) bool {
	if len(s) != keyChars {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil
}

// find looks a key hash up among the entries not older than notBefore. mightHold reports,
// for a partial ledger, that the key may be in the part not held.
func (l *keyLedger) find(hash string, notBefore time.Time) (e appliedKey, found, mightHold bool) {
	if l.partial {
		return appliedKey{}, false, strings.Contains(l.digest, hash[:digestChars]+",")
	}
	cutoff := notBefore.Unix()
	for _, e := range l.entries {
		if e.Key == hash && e.At >= cutoff {
			return e, true, false
		}
	}
	return appliedKey{}, false, false
}

// with returns the ledger with e added, keeping at most maxEntries none older than
// notBefore. The entries are copied: ledgers are shared between accounts.
func (l keyLedger) with(e appliedKey, maxEntries int, notBefore time.Time) keyLedger {
	cutoff := notBefore.Unix()
	kept := make([]appliedKey, 0, len(l.entries)+1)
	for _, old := range l.entries {
		if old.At >= cutoff {
			kept = append(kept, old)
		}
	}
	kept = append(kept, e)
	if len(kept) > maxEntries {
		kept = kept[len(kept)-maxEntries:]
	}
	return keyLedger{entries: kept, changed: true}
}

// check reports a ledger that cannot guard against repeats.
func (l *keyLedger) check() error {
	if l.damaged {
		return fmt.Errorf("an applied-keys ledger is damaged: a retried request could be applied twice")
	}
	return nil
}

// replay answers op from the ledger entry e of its key: the original result when e is the
// same request, else ErrIdempotencyKeyReused.
func replay(e appliedKey, op Operation) (Result, error) {
	made := op.Kind == OpReserve || op.Kind == OpGrant // the store names what these make, anew for each request
	if e.Op != ledgerOp(op) || e.Amount != requested(op) || e.Terms != termsDigest(op) || (!made && e.ID != named(op)) {
		return Result{}, ErrIdempotencyKeyReused
	}
	res := Result{Credits: e.Result, Replayed: true}
	switch op.Kind {
	case OpReserve:
		res.ReservationID = e.ID
	case OpGrant:
		res.LotID = e.ID
	}
	return res, nil
}

// named is the hold or lot op names.
func named(op Operation) string {
	if op.Kind == OpVoid {
		return op.Terms.ID
	}
	return op.ReservationID
}

// termsDigest is what a ledger records of a grant's lot terms (its ID aside, which the store
// picks anew for each request), so that a key reused with other terms is refused: "" for
// the default terms, which grants recorded before lots existed had.
func termsDigest(op Operation) string {
	t := op.Terms
	source := t.Source
	if source == "" {
		source = SourceAPI
	}
	if op.Kind != OpGrant || t.ExpiresAt.IsZero() && t.priority() == DefaultPriority && source == SourceAPI && t.Reference == "" && t.Reason == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("%d|%d|%s|%s|%s", t.ExpiresAt.Unix(), t.priority(), source, t.Reference, t.Reason)))
	return hex.EncodeToString(sum[:6])
}

// digestOf lists the hash prefixes of a ledger's keys: the cache's form of it.
func digestOf(entries []appliedKey) string {
	var b strings.Builder
	b.Grow(len(entries) * (digestChars + 1))
	for _, e := range entries {
		if len(e.Key) >= digestChars {
			b.WriteString(e.Key[:digestChars])
			b.WriteByte(',')
		}
	}
	return b.String()
}

// digestChars is 66 bits of a key hash: a false match only costs one apiserver read.
const digestChars = 11
