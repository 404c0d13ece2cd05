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

// AppliedRequestsAnnotation holds the recently applied idempotency keys of one user. It is
// written in the same update as the balance it accounts for, so the two cannot disagree.
const AppliedRequestsAnnotation = "credits.gitread.dev/applied-requests"

// Retention of applied idempotency keys: the most recent LedgerMaxEntries, none older than
// LedgerMaxAge. A retry after that is applied again.
const (
	LedgerMaxEntries = 100
	LedgerMaxAge     = 24 * time.Hour
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
)

// appliedRequest is one entry of the ledger annotation; short JSON names keep it small.
type appliedRequest struct {
	Key    string `json:"k"` // hash of the Idempotency-Key: bounded size, no caller data stored
	Op     OpKind `json:"op"`
	Amount int64  `json:"n"`
	Result int64  `json:"r"`
	At     int64  `json:"t"` // unix seconds
}

// decision is what applying an Operation to a balance and ledger comes to.
type decision struct {
	result  Result
	write   bool
	credits int64
	ledger  string // new annotation value; "" leaves it as is
}

// decide applies op to balance and the ledger annotation at time now. It is pure: the store
// calls it on each (re)read of the object, and it is unit-tested alone.
func decide(balance int64, ledgerJSON string, op Operation, now time.Time) (decision, error) {
	if op.Amount < 0 || op.Amount > MaxBalance || (op.Kind != OpSet && op.Amount == 0) {
		return decision{}, ErrInvalidOperation
	}
	var entries []appliedRequest
	var keyHash string
	if op.IdempotencyKey != "" {
		entries = parseLedger(ledgerJSON, now)
		keyHash = hashKey(op.IdempotencyKey)
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

	d := decision{result: Result{Credits: next}, credits: next, write: next != balance}
	if keyHash != "" {
		entries = append(entries, appliedRequest{Key: keyHash, Op: op.Kind, Amount: op.Amount, Result: next, At: now.Unix()})
		if len(entries) > LedgerMaxEntries {
			entries = entries[len(entries)-LedgerMaxEntries:]
		}
		data, _ := json.Marshal(entries) // cannot fail: plain structs
		d.ledger, d.write = string(data), true
	}
	return d, nil
}

// parseLedger reads the ledger, dropping entries past LedgerMaxAge. A damaged annotation
// reads as empty: it only ever guards against repeats, never holds the balance.
func parseLedger(value string, now time.Time) []appliedRequest {
	if value == "" {
		return nil
	}
	var entries []appliedRequest
	if json.Unmarshal([]byte(value), &entries) != nil {
		return nil
	}
	cutoff := now.Add(-LedgerMaxAge).Unix()
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
