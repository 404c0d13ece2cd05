package credits

import (
	"testing"
	"time"
)

func TestHistoryKeepsTheLast100NewestFirst(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	u := &user{}
	for i := range 250 {
		op := Operation{Kind: OpGrant, Amount: int64(i + 1)}
		if i%3 == 1 {
			op = Operation{Kind: OpConsume, Amount: 1}
		}
		if _, err := u.do(op, start.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
		if i == 120 {
			// What the informer cache keeps is enough to go on appending.
			obj := cachedCopy(u.ann)
			u.ann = obj
		}
	}
	h := History(u.ann)
	if len(h) != HistoryLength {
		t.Fatalf("%d entries, want %d", len(h), HistoryLength)
	}
	for i, tr := range h {
		at := start.Add(time.Duration(249-i) * time.Second).UTC()
		if !tr.At.Equal(at) {
			t.Fatalf("entry %d at %v, want %v (newest first)", i, tr.At, at)
		}
	}
	if h[0].Balance != u.credits {
		t.Fatalf("newest entry's balance %d, balance %d", h[0].Balance, u.credits)
	}
	if h[0].Kind != OpGrant || h[0].Credits != 250 || h[1].Kind != OpGrant || h[2].Kind != OpConsume {
		t.Fatalf("newest entries %+v", h[:3])
	}
	if n := len(History(map[string]string{})); n != 0 {
		t.Fatalf("empty history has %d entries", n)
	}
}

// cachedCopy is annotations as CacheTransform leaves them.
func cachedCopy(annotations map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range annotations {
		out[k] = v
	}
	u := userCredits(out)
	_, _ = CacheTransform(u)
	return u.Annotations
}
