package account

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// oldHash is a key as the release before the text form stored it: 32 hex digits.
func oldHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16])
}

// oldFormatRecord is a record as the release before the text form wrote it (JSON ledgers,
// JSON closed holds, every history entry written whole): 10 credits granted by a purchase
// keyed "cs_old", a keyed consume of 2, a hold of 3 reserved and captured with keys, and
// the history of those four.
func oldFormatRecord(t *testing.T, at time.Time) *record {
	r := newRecord(t, 6)
	u := at.Unix()
	r.obj.Annotations = map[string]string{
		AppliedGrantsAnnotation: fmt.Sprintf(`[{"k":%q,"op":"grant","n":10,"r":10,"t":%d,"id":"lot_old"}]`, oldHash("cs_old"), u),
		AppliedRequestsAnnotation: fmt.Sprintf(`[{"k":%q,"op":"consume","n":2,"r":8,"t":%d},`+
			`{"k":%q,"op":"reserve","n":3,"r":5,"t":%d,"id":"rsv_old"},{"k":%q,"op":"capture","n":-1,"r":5,"t":%d,"id":"rsv_old"}]`,
			oldHash("consume-1"), u+10, oldHash("reserve-1"), u+20, oldHash("capture-1"), u+30),
		ClosedHoldsAnnotation:     fmt.Sprintf(`[{"id":"rsv_old","s":"captured","h":3,"c":3,"r":5,"t":%d}]`, u+30),
		HistorySeqAnnotation:      "4",
		HistoryChunkAnnotation(0): fmt.Sprintf("b,10,10,%d,cs_old;c,2,8,%d;r,3,5,%d;p,3,5,%d", u, u+10, u+20, u+30),
		WriteSeqAnnotation:        "4",
	}
	r.obj.Spec.Credits = 5
	return r
}

// TestAccountOldFormatRecordKeepsWorking: a record the previous release wrote is read as it
// was written (every key answers its replay, a key reused with another request is refused,
// the history is served), the next write stores its parts in the text form, and after it
// the keys recorded before still answer and the history still reads whole.
func TestAccountOldFormatRecordKeepsWorking(t *testing.T) {
	at := time.Unix(1_800_000_000, 0).UTC()
	now := at.Add(time.Hour)
	replays := []struct {
		op   Operation
		want Result
	}{
		{Operation{Kind: OpGrant, Amount: 10, IdempotencyKey: "cs_old"}, Result{Credits: 10, LotID: "lot_old", Replayed: true}},
		{Operation{Kind: OpConsume, Amount: 2, IdempotencyKey: "consume-1"}, Result{Credits: 8, Replayed: true}},
		{Operation{Kind: OpReserve, Amount: 3, TTL: time.Minute, ReservationID: "rsv_new", IdempotencyKey: "reserve-1"}, Result{Credits: 5, ReservationID: "rsv_old", Replayed: true}},
		{Operation{Kind: OpCapture, CaptureAll: true, ReservationID: "rsv_old", IdempotencyKey: "capture-1"}, Result{Credits: 5, Replayed: true}},
		{Operation{Kind: OpCapture, CaptureAll: true, ReservationID: "rsv_old"}, Result{Credits: 5, Replayed: true}}, // the closed hold
	}
	wantHistory := []string{"5", "5", "8", "10"}
	check := func(r *record, when string) {
		t.Helper()
		for _, cache := range []bool{false, true} {
			r.cache = cache
			if d := r.account().Damage(); len(d) != 0 {
				t.Errorf("%s (cache form %v): damage %v", when, cache, d)
			}
			for _, c := range replays {
				if res, changed, err := r.do(c.op, now); err != nil || changed || res != c.want {
					t.Errorf("%s (cache form %v): %s %q answered %+v changed %v %v, want %+v", when, cache, c.op.Kind, c.op.IdempotencyKey, res, changed, err, c.want)
				}
				if c.op.IdempotencyKey == "" {
					continue
				}
				other := c.op
				other.Amount, other.CaptureAll = other.Amount+1, false
				if _, _, err := r.do(other, now); !errors.Is(err, ErrIdempotencyKeyReused) {
					t.Errorf("%s (cache form %v): %s %q with another amount: %v, want ErrIdempotencyKeyReused", when, cache, c.op.Kind, c.op.IdempotencyKey, err)
				}
			}
		}
		r.cache = false
		if got := historyOf(t, r); !slices.Equal(got[len(got)-len(wantHistory):], wantHistory) {
			t.Errorf("%s: history %v, want it to end with %v", when, got, wantHistory)
		}
	}
	r := oldFormatRecord(t, at)
	check(r, "as the previous release wrote it")
	if _, _, err := r.do(Operation{Kind: OpConsume, Amount: 1, IdempotencyKey: "consume-2"}, now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.do(Operation{Kind: OpGrant, Amount: 1, IdempotencyKey: "cs_new"}, now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.do(reserve("rsv_2", 1), now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.do(Operation{Kind: OpRelease, ReservationID: "rsv_2"}, now); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{AppliedGrantsAnnotation, AppliedRequestsAnnotation, ClosedHoldsAnnotation} {
		if text := r.annotation(name); strings.HasPrefix(text, "[") || strings.Contains(text, oldHash("cs_old")) {
			t.Errorf("%s after a write: %q, want the text form", name, text)
		}
	}
	wantHistory = []string{"5", "4", "5", "4", "5", "5", "8", "10"}
	check(r, "after writes")
	if got := r.annotation(HistoryChunkAnnotation(0)); !strings.HasPrefix(got, fmt.Sprintf("b,10,10,%d,cs_old;c,2,8,", at.Unix())) || !strings.HasSuffix(got, ";l1,-5,3600") {
		t.Errorf("history chunk 0 %q: want the entries written before as they were, the new ones written against the first", got)
	}
}
