package credits

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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
	RequestKeysMaxEntries    = 100
	RequestKeysMaxAge        = 24 * time.Hour
	GrantKeysMaxEntries      = 1000
	DefaultGrantKeyRetention = 30 * 24 * time.Hour
)

// OpKind is what an Operation does to a balance.
type OpKind string

// Operation kinds.
const (
	OpSet     OpKind = "set"
	OpConsume OpKind = "consume"
	OpGrant   OpKind = "grant"
)

// Operation is one change to a user's balance.
type Operation struct {
	Kind   OpKind
	Amount int64
	// IdempotencyKey, when set, makes a repeat of the same operation a no-op that returns
	// the original result.
	IdempotencyKey string
}

// Result is the outcome of an Operation.
type Result struct {
	// Credits is the balance after the operation, or the current balance when it was refused.
	Credits int64
	// Replayed is true when an earlier application of the same idempotency key was returned.
	Replayed bool
}

// Errors an Operation can be refused with; nothing changes when they are returned.
var (
	ErrInsufficientCredits  = errors.New("insufficient credits")
	ErrIdempotencyKeyReused = errors.New("idempotency key reused with a different request")
	ErrBalanceOverflow      = errors.New("balance would exceed the maximum")
	ErrInvalidOperation     = errors.New("invalid operation")
	ErrInvalidUserID        = errors.New("invalid user ID")
)

// appliedRequest is one entry of the ledger annotation; short JSON names keep it small.
type appliedRequest struct {
	Key    string `json:"k"` // hash of the Idempotency-Key: bounded size, no caller data stored
	Op     OpKind `json:"op"`
	Amount int64  `json:"n"`
	Result int64  `json:"r"`
	At     int64  `json:"t"` // unix seconds
}

// ledgers are the values of the two key annotations of one object.
type ledgers struct {
	requests, grants string
}

// ledgersOf reads the key annotations of an object.
func ledgersOf(annotations map[string]string) ledgers {
	return ledgers{requests: annotations[AppliedRequestsAnnotation], grants: annotations[AppliedGrantsAnnotation]}
}

// annotations are the ledger annotations to write: only those that changed, nil for none.
func (l ledgers) annotations() map[string]string {
	var a map[string]string
	for name, value := range map[string]string{AppliedRequestsAnnotation: l.requests, AppliedGrantsAnnotation: l.grants} {
		if value != "" {
			if a == nil {
				a = map[string]string{}
			}
			a[name] = value
		}
	}
	return a
}

// decision is what applying an Operation to a balance and its ledgers comes to.
type decision struct {
	result  Result
	write   bool
	credits int64
	// ledgers holds the new value of each annotation op adds its key to; "" leaves it as is.
	ledgers ledgers
}

// decide applies op to balance and the key ledgers at time now, remembering grant keys for
// grantKeyRetention. It is pure: the store calls it on each (re)read of the object, and it
// is unit-tested alone.
//
// A set always writes, even to the balance it already has: the write carries the
// resourceVersion it was decided on, so the apiserver confirms the balance the decision
// was taken from instead of a possibly stale cache.
func decide(balance int64, l ledgers, op Operation, now time.Time, grantKeyRetention time.Duration) (decision, error) {
	if op.Amount < 0 || op.Amount > MaxBalance || (op.Kind != OpSet && op.Amount == 0) {
		return decision{}, ErrInvalidOperation
	}
	var requests, grants []appliedRequest
	var keyHash string
	if op.IdempotencyKey != "" {
		requests = parseLedger(l.requests, now.Add(-RequestKeysMaxAge))
		grants = parseLedger(l.grants, now.Add(-grantKeyRetention))
		keyHash = hashKey(op.IdempotencyKey)
		for _, entries := range [][]appliedRequest{grants, requests} {
			for _, e := range entries {
				if e.Key != keyHash {
					continue
				}
				if e.Op != op.Kind || e.Amount != op.Amount {
					return decision{result: Result{Credits: balance}}, ErrIdempotencyKeyReused
				}
				return decision{result: Result{Credits: e.Result, Replayed: true}}, nil
			}
		}
	}

	next := balance
	switch op.Kind {
	case OpSet:
		next = op.Amount
	case OpConsume:
		if balance < op.Amount {
			return decision{result: Result{Credits: balance}}, ErrInsufficientCredits
		}
		next = balance - op.Amount
	case OpGrant:
		if balance > MaxBalance-op.Amount {
			return decision{result: Result{Credits: balance}}, ErrBalanceOverflow
		}
		next = balance + op.Amount
	default:
		return decision{}, ErrInvalidOperation
	}

	d := decision{result: Result{Credits: next}, credits: next, write: next != balance || op.Kind == OpSet}
	if keyHash != "" {
		entry := appliedRequest{Key: keyHash, Op: op.Kind, Amount: op.Amount, Result: next, At: now.Unix()}
		if op.Kind == OpGrant {
			d.ledgers.grants = appendBounded(grants, entry, GrantKeysMaxEntries)
		} else {
			d.ledgers.requests = appendBounded(requests, entry, RequestKeysMaxEntries)
		}
		d.write = true
	}
	return d, nil
}

// appendBounded adds e to entries, keeps the newest max, and encodes them.
func appendBounded(entries []appliedRequest, e appliedRequest, max int) string {
	entries = append(entries, e)
	if len(entries) > max {
		entries = entries[len(entries)-max:]
	}
	data, _ := json.Marshal(entries) // cannot fail: plain structs
	return string(data)
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
