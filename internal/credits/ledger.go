package credits

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// MaxBalance is the largest balance: 2^53-1, the largest integer a JavaScript client
// holds exactly. Grants beyond it are refused rather than wrapped or rounded.
const MaxBalance = 1<<53 - 1

// Applied idempotency keys are remembered in two annotations of the user's object, each
// written in the same update as the balance it accounts for, so the two cannot disagree:
//   - AppliedGrantsAnnotation: grant keys, for the grant-key retention (30 days by default)
//     and up to GrantKeysMaxEntries of them. Only callers allowed to grant can add to it,
//     so no end-user request can push a checkout's key out.
//   - AppliedRequestsAnnotation: the keys of every other operation, the most recent
//     RequestKeysMaxEntries and none older than RequestKeysMaxAge.
//
// A retry after its key is forgotten is applied again.
const (
	AppliedRequestsAnnotation = "credits.gitread.dev/applied-requests"
	AppliedGrantsAnnotation   = "credits.gitread.dev/applied-grants"
)

// Retention bounds of the two key ledgers.
const (
	RequestKeysMaxEntries = 100
	RequestKeysMaxAge     = 24 * time.Hour
	GrantKeysMaxEntries   = 1000
)

// appliedRequest is one entry of a key ledger; short JSON names keep it small.
type appliedRequest struct {
	Key    string `json:"k"` // hash of the Idempotency-Key: bounded size, no caller data stored
	Op     OpKind `json:"op"`
	Amount int64  `json:"n"`
	Result int64  `json:"r"`
	At     int64  `json:"t"`            // unix seconds
	ID     string `json:"id,omitempty"` // the reservation a reserve created, or a capture or release named
}

// keyLedger says where an operation's key is recorded and how long it is kept.
func keyLedger(kind OpKind, grantKeyRetention time.Duration) (annotation string, maxEntries int, maxAge time.Duration) {
	if kind == OpGrant {
		return AppliedGrantsAnnotation, GrantKeysMaxEntries, grantKeyRetention
	}
	return AppliedRequestsAnnotation, RequestKeysMaxEntries, RequestKeysMaxAge
}

// findKey looks op's key up in both key ledgers of annotations: a replay returns the
// original result; the same key with another request is ErrIdempotencyKeyReused.
func findKey(annotations map[string]string, op Operation, now time.Time, grantKeyRetention time.Duration) (Result, bool, error) {
	keyHash := hashKey(op.IdempotencyKey)
	for _, kind := range []OpKind{OpGrant, OpConsume} {
		name, _, maxAge := keyLedger(kind, grantKeyRetention)
		for _, e := range parseLedger(annotations[name], now.Add(-maxAge)) {
			if e.Key != keyHash {
				continue
			}
			if e.Op != op.Kind || e.Amount != requested(op) || (op.Kind != OpReserve && e.ID != op.ReservationID) {
				return Result{}, true, ErrIdempotencyKeyReused
			}
			return Result{Credits: e.Result, Replayed: true, ReservationID: e.ID}, true, nil
		}
	}
	return Result{}, false, nil
}

// captureAllAmount is the amount a key ledger records for a capture of the whole hold, so
// that it and a capture of an explicit amount are different requests.
const captureAllAmount = -1

// requested is the amount op asked for, as a key ledger records it.
func requested(op Operation) int64 {
	if op.Kind == OpCapture && op.CaptureAll {
		return captureAllAmount
	}
	return op.Amount
}

// recordKey adds op's key, with its result, to the ledger it belongs in, and returns that
// ledger's annotation and new value.
func recordKey(annotations map[string]string, op Operation, res Result, now time.Time, grantKeyRetention time.Duration) (string, string) {
	name, maxEntries, maxAge := keyLedger(op.Kind, grantKeyRetention)
	entries := parseLedger(annotations[name], now.Add(-maxAge))
	id := op.ReservationID // the hold a capture or release named
	if op.Kind == OpReserve {
		id = res.ReservationID // the hold it created
	}
	entries = append(entries, appliedRequest{Key: hashKey(op.IdempotencyKey), Op: op.Kind, Amount: requested(op), Result: res.Credits, At: now.Unix(), ID: id})
	if len(entries) > maxEntries {
		entries = entries[len(entries)-maxEntries:]
	}
	data, _ := json.Marshal(entries) // cannot fail: plain structs
	return name, string(data)
}

// parseLedger reads a key ledger, dropping entries older than notBefore. A damaged
// annotation reads as empty: it only ever guards against repeats, never holds the balance.
func parseLedger(value string, notBefore time.Time) []appliedRequest {
	if value == "" {
		return nil
	}
	var entries []appliedRequest
	if json.Unmarshal([]byte(value), &entries) != nil {
		return nil
	}
	cutoff := notBefore.Unix()
	kept := entries[:0]
	for _, e := range entries {
		if e.At >= cutoff {
			kept = append(kept, e)
		}
	}
	return kept
}

func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16])
}
