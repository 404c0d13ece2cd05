package account

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// historyOf is what the account r holds answers of its history, as "balance" strings,
// newest first.
func historyOf(t *testing.T, r *record) []string {
	t.Helper()
	var out []string
	for _, tr := range r.account().History() {
		out = append(out, fmt.Sprint(tr.Balance))
	}
	return out
}

// consumes makes n consumes of 1 on r, decided on the cache's form when r.cache.
func consumes(t *testing.T, r *record, n int, now time.Time) {
	t.Helper()
	for range n {
		if _, _, err := r.do(Operation{Kind: OpConsume, Amount: 1}, now); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAccountDamagedChunkNeverCostsAnotherChunkItsEntries (attack: a history chunk other
// than the one being filled edited past its bound): the cache's form keeps the chunk being
// filled and lists the damaged one, so the account decoded from it (what the controller
// judges) reports the damage, and a change decided on it appends to the chunk's entries
// instead of writing the chunk anew.
func TestAccountDamagedChunkNeverCostsAnotherChunkItsEntries(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 100)
	consumes(t, r, 15, now) // chunk 0 full, chunk 1 holds 5
	for name, text := range map[string]string{"over its bound": strings.Repeat("x", 5000), "garbled": "x;y;z"} {
		damaged := newRecord(t, 0)
		damaged.obj = r.obj.DeepCopy()
		damaged.obj.Annotations[HistoryChunkAnnotation(0)] = text
		damaged.cache = true
		if got := damaged.account().Damage(); !slices.Equal(got, []string{HistoryChunkAnnotation(0)}) {
			t.Errorf("chunk 0 %s, in the cache's form: damage %v, want [%s]", name, got, HistoryChunkAnnotation(0))
		}
		consumes(t, damaged, 1, now)
		damaged.cache = false
		if got, want := historyOf(t, damaged), []string{"84", "85", "86", "87", "88", "89"}; !slices.Equal(got, want) {
			t.Errorf("chunk 0 %s, after a consume decided on the cache's form: history %v, want %v (chunk 1 whole, and the consume)", name, got, want)
		}
		if got := damaged.account().Damage(); !slices.Equal(got, []string{HistoryChunkAnnotation(0)}) {
			t.Errorf("chunk 0 %s, after a consume that did not write it: damage %v, want it still reported", name, got)
		}
		twice := damaged.obj.DeepCopy()
		CacheForm(twice)
		once := twice.DeepCopy()
		if CacheForm(twice); !slices.Equal(sortedKeys(twice.Annotations), sortedKeys(once.Annotations)) {
			t.Errorf("chunk 0 %s: the cache's form of the cache's form %v, want %v", name, twice.Annotations, once.Annotations)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	var keys []string
	for k, v := range m {
		keys = append(keys, k+"="+v)
	}
	slices.Sort(keys)
	return keys
}

// TestAccountUnreadableChunkIsReportedAndNeverHidesNewEntries (attack: the chunk being
// filled edited into text that is not its entries): it is reported, its readable entries
// are still served each in its place, and the next change writes the chunk whole again with
// its entry where the reader looks for it: a lost entry stands as lostEntry, extra text is
// dropped.
func TestAccountUnreadableChunkIsReportedAndNeverHidesNewEntries(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, c := range []struct {
		name, chunk string
		seq         string
		before      []string // the history read before the consumes
		after       []string // after two consumes from 10 credits
	}{
		{"garbage for one entry", "x;y;z", "1", nil, []string{"8", "9"}},
		{"one of three unreadable", "c,1,9,1800000000;garbage;c,1,7,1800000000", "3", []string{"7", "9"}, []string{"8", "9", "7", "9"}},
		{"one entry too many", "c,1,9,1800000000;c,1,8,1800000000", "1", []string{"9"}, []string{"8", "9", "9"}},
		{"deleted by hand", "", "2", nil, []string{"8", "9"}},
		// Entries written against the first of their chunk read only while it does.
		{"the first unreadable, the others written against it", "garbage;c1,-1,0;c1,-2,0", "3", nil, []string{"8", "9"}},
		{"one written against the first unreadable", "c,1,9,1800000000;c1,x,0;c1,-2,0", "3", []string{"7", "9"}, []string{"8", "9", "7", "9"}},
	} {
		r := newRecord(t, 10)
		r.obj.Annotations = map[string]string{HistorySeqAnnotation: c.seq}
		if c.chunk != "" {
			r.obj.Annotations[HistoryChunkAnnotation(0)] = c.chunk
		}
		wantDamage := []string{HistoryChunkAnnotation(0)}
		if c.chunk == "" {
			wantDamage = nil // a deleted part is accepted as lost
		}
		for _, cache := range []bool{false, true} {
			r.cache = cache
			if got := r.account().Damage(); !slices.Equal(got, wantDamage) {
				t.Errorf("%s (cache form %v): damage %v, want %v", c.name, cache, got, wantDamage)
			}
		}
		r.cache = false
		if got := historyOf(t, r); !slices.Equal(got, c.before) {
			t.Errorf("%s: history %v, want %v (the readable entries, each in its place)", c.name, got, c.before)
		}
		r.cache = true
		consumes(t, r, 2, now)
		r.cache = false
		if got := historyOf(t, r); !slices.Equal(got, c.after) {
			t.Errorf("%s: after two consumes, history %v (chunk %q), want %v", c.name, got, r.annotation(HistoryChunkAnnotation(0)), c.after)
		}
		if got := r.account().Damage(); len(got) != 0 {
			t.Errorf("%s: written whole again by the next change, the chunk (%q) is still damage %v", c.name, r.annotation(HistoryChunkAnnotation(0)), got)
		}
	}
}

// TestAccountHistoryOfAnEarlierLapIsNeverRead: a chunk the ring has come round to again
// holds only the entries of its latest lap; what is stored past them is not read as
// entries of this lap.
func TestAccountHistoryOfAnEarlierLapIsNeverRead(t *testing.T) {
	r := newRecord(t, 200)
	consumes(t, r, 115, time.Unix(1_800_000_000, 0)) // chunk 0 holds entries 110 to 114
	want := historyOf(t, r)
	full := r.annotation(HistoryChunkAnnotation(1)) // 10 entries, of balances 189 to 180
	r.obj.Annotations[HistoryChunkAnnotation(0)] += ";" + strings.SplitN(full, ";", 6)[5]
	if got := historyOf(t, r); !slices.Equal(got, want) {
		t.Errorf("a sixth entry in chunk 0, which holds 5: history %v, want %v", got, want)
	}
	if got := r.account().Damage(); !slices.Equal(got, []string{HistoryChunkAnnotation(0)}) {
		t.Errorf("a sixth entry in chunk 0, which holds 5: damage %v", got)
	}
}

// TestAccountCacheFormCannotBeForged (attack: kubectl annotate of the key that marks the
// cache's form): that key is no annotation key the apiserver stores, so no object read from
// the apiserver is taken for the cache's partial form. A stored object carrying the name
// the form used before is read whole: its grant keys are honoured and a new keyed grant is
// decided on it.
func TestAccountCacheFormCannotBeForged(t *testing.T) {
	for _, key := range []string{GrantKeyDigestAnnotation, cacheDamageAnnotation} {
		if errs := validation.ValidateAnnotations(map[string]string{key: ""}, field.NewPath("metadata", "annotations")); len(errs) == 0 {
			t.Errorf("the apiserver would store annotation %q: a stored object could pass for the cache's form", key)
		}
	}
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	if _, _, err := r.do(Operation{Kind: OpGrant, Amount: 10, IdempotencyKey: "cs_1"}, now); err != nil {
		t.Fatal(err)
	}
	r.obj.Annotations["cache.credits.gitread.dev/grant-key-digest"] = ""
	if _, _, err := r.do(Operation{Kind: OpConsume, Amount: 10, IdempotencyKey: "cs_1"}, now); !errors.Is(err, ErrIdempotencyKeyReused) {
		t.Errorf("a consume reusing a grant's key, on a record carrying a forged digest: %v, want ErrIdempotencyKeyReused", err)
	}
	if res, _, err := r.do(Operation{Kind: OpGrant, Amount: 10, IdempotencyKey: "cs_2"}, now); err != nil || res.Credits != 20 {
		t.Errorf("a new keyed grant on a record carrying a forged digest: %+v %v, want 20 credits", res, err)
	}
	r.cache = true
	if res, _, err := r.do(Operation{Kind: OpGrant, Amount: 10, IdempotencyKey: "cs_1"}, now); err != nil || !res.Replayed || res.Credits != 10 {
		t.Errorf("a retried grant decided from the cache's form of a record carrying a forged digest: %+v %v, want a replay of 10", res, err)
	}
}
