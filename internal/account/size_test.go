package account

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// busyOp is an operation of the busy user, when it was applied and what it answered.
type busyOp struct {
	op  Operation
	at  time.Time
	res Result
}

// stripeID is a Stripe-like ID of length characters: prefix and hex digits.
func stripeID(prefix string, n, length int) string {
	sum := sha256.Sum256([]byte(fmt.Sprint(prefix, n)))
	id := prefix + hex.EncodeToString(sum[:]) + hex.EncodeToString(sum[:])
	return id[:length]
}

// busyUser is the user issue 22 sizes: 12 purchases (Stripe grants keyed by their Checkout
// Session, over 30 days), 80 keyed consumes in one day, 4 holds reserved and captured with
// keys, as the store names things (lot_ and rsv_ and 16 hex digits, Stripe's IDs at their
// usual lengths: a Checkout Session's 66 characters). It returns the record, the first
// purchase and the 80th consume.

func busyUser(t *testing.T) (r *record, firstPurchase, lastConsume busyOp) {
	t.Helper()
	r = newRecord(t, 0)
	r.obj.Spec.UserID = "user_2NNEqL2nrIRdJ194ndJqAHwEfxC"
	start := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	do := func(op Operation, at time.Time) busyOp {
		t.Helper()
		res, _, err := r.do(op, at)
		if err != nil {
			t.Fatalf("%+v: %v", op, err)
		}
		return busyOp{op, at, res}
	}
	for i := range 12 {
		session := stripeID("cs_live_a1", i, 66)
		op := Operation{Kind: OpGrant, Amount: 100, IdempotencyKey: "stripe-checkout:" + session, Purchase: session,
			Payment: stripeID("pi_3", i, 27), Terms: LotTerms{ID: stripeID("lot_", i, 20)}}
		p := do(op, start.Add(time.Duration(i)*59*time.Hour+time.Duration(i)*37*time.Second))
		if i == 0 {
			firstPurchase = p
		}
	}
	day := start.Add(29 * 24 * time.Hour)
	for i := range 80 {
		at := day.Add(time.Duration(i)*17*time.Minute + time.Duration(i*i%53)*time.Second)
		key := stripeID("", 1000+i, 32)
		key = key[:8] + "-" + key[8:12] + "-" + key[12:16] + "-" + key[16:20] + "-" + key[20:32]
		lastConsume = do(Operation{Kind: OpConsume, Amount: 5, IdempotencyKey: key}, at)
		if i%20 == 10 {
			hold := stripeID("rsv_", i, 20)
			do(Operation{Kind: OpReserve, Amount: 8, TTL: 10 * time.Minute, ReservationID: hold, IdempotencyKey: key + "-r"}, at.Add(time.Second))
			do(Operation{Kind: OpCapture, Amount: 6, ReservationID: hold, IdempotencyKey: key + "-c"}, at.Add(90*time.Second))
		}
	}
	return r, firstPurchase, lastConsume
}

// accountAnnotations is the size of what the account stores in annotations, as JSON
// members (key and value): the ledgers, the closed holds, the history and the counts.
func accountAnnotations(r *record) (total int, parts map[string]int) {
	parts = map[string]int{}
	for name, v := range r.obj.Annotations {
		member, _ := json.Marshal(map[string]string{name: v})
		n := len(member) - 1 // the braces, less the comma that separates members
		total += n
		switch {
		case strings.HasPrefix(name, historyChunkPrefix) || name == HistorySeqAnnotation:
			parts["history"] += n
		default:
			parts[name] += n
		}
	}
	return total, parts
}

// storedSize is the size of r's object as the apiserver stores it (compact JSON), with the
// metadata it adds; managedFields and status aside.
func storedSize(t *testing.T, r *record) int {
	t.Helper()
	obj := r.obj.DeepCopy()
	obj.APIVersion, obj.Kind = "credits.gitread.dev/v1alpha1", "UserCredits"
	obj.Name, obj.Namespace = ObjectNameForUser(obj.Spec.UserID), "gitread-credits"
	obj.UID, obj.ResourceVersion, obj.Generation = "4f0b8f0e-6a64-4f1c-9a55-1f0f7c9e2b11", "123456789", 137
	obj.CreationTimestamp = metav1.NewTime(time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC))
	data, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return len(data)
}

// busyUserAnnotationBound bounds what the account stores in annotations for the busy user:
// 88 request keys at about 27 bytes, 12 grant keys at about 53 (a lot ID each), 106
// history entries at 10 to 20 bytes (the purchases' 90, naming their 66-character
// Checkout Session), 4 closed holds, and the 15 annotation names. The JSON lists stored
// before came to 13.6 KiB.
const busyUserAnnotationBound = 6 << 10

// TestAccountBusyUserIsStoredSmall: the busy user of issue 22 is stored within
// busyUserAnnotationBound, every window kept (all 88 request keys and 12 grant keys still
// answer, and 100 history entries), and a replay of the first purchase and of the 80th
// consume answers as when they were applied, from the record and from the cache's form.
func TestAccountBusyUserIsStoredSmall(t *testing.T) {
	r, purchase, consume := busyUser(t)
	total, parts := accountAnnotations(r)
	t.Logf("busy user: %d bytes stored (without status and managedFields), %d of them the account's annotations %v", storedSize(t, r), total, parts)
	if total > busyUserAnnotationBound {
		t.Errorf("the busy user's annotations are %d bytes, over %d: %v", total, busyUserAnnotationBound, parts)
	}
	a := r.account()
	if n := len(a.requests.entries); n != 88 {
		t.Errorf("the request ledger holds %d keys, want all 88", n)
	}
	if n := len(a.grants.entries); n != 12 {
		t.Errorf("the grant ledger holds %d keys, want all 12", n)
	}
	if n := len(a.History()); n != HistoryLength {
		t.Errorf("the history answers %d entries, want %d", n, HistoryLength)
	}
	for _, cache := range []bool{false, true} {
		r.cache = cache
		for _, p := range []busyOp{purchase, consume} {
			at := p.at.Add(time.Hour) // both within their windows: the consume's day, the purchase's 30 days
			if p.op.Kind == OpGrant {
				at = p.at.Add(29*24*time.Hour + 23*time.Hour)
			}
			before := r.obj.ResourceVersion + r.annotation(WriteSeqAnnotation)
			res, changed, err := r.do(p.op, at)
			want := p.res
			want.Replayed = true
			if err != nil || changed || res != want {
				t.Errorf("replay of %s %s (cache form %v): %+v changed %v %v, want %+v unchanged", p.op.Kind, p.op.IdempotencyKey, cache, res, changed, err, want)
			}
			if after := r.obj.ResourceVersion + r.annotation(WriteSeqAnnotation); after != before {
				t.Errorf("replay of %s wrote the record", p.op.Kind)
			}
			other := p.op
			other.Amount++
			if _, _, err := r.do(other, at); !errors.Is(err, ErrIdempotencyKeyReused) {
				t.Errorf("%s's key with another amount (cache form %v): %v, want ErrIdempotencyKeyReused", p.op.Kind, cache, err)
			}
		}
	}
}
