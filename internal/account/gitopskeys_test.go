package account

import (
	"slices"
	"testing"
	"time"
)

// TestAccountCreditGrantKeysAreFoundInEitherForm: the keys of CreditGrants' grants (and
// only those) are listed from the stored record and from the cache's form of it, and a
// record holds a key within the grant-key retention only.
func TestAccountCreditGrantKeysAreFoundInEitherForm(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newRecord(t, 0)
	cg := Operation{Kind: OpGrant, Amount: 5, IdempotencyKey: "creditgrant:promo", Terms: LotTerms{Source: SourceGitOps, Reference: "promo"}}
	for _, op := range []Operation{cg, {Kind: OpGrant, Amount: 1, IdempotencyKey: "api-grant"}, {Kind: OpConsume, Amount: 1, IdempotencyKey: "c"}} {
		if _, _, err := r.do(op, now); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{KeyHash("creditgrant:promo")}
	if got := GitOpsKeys(r.obj); !slices.Equal(got, want) {
		t.Fatalf("stored form: %v, want %v", got, want)
	}
	cached := r.obj.DeepCopy()
	CacheForm(cached)
	CacheForm(cached) // idempotent
	if got := GitOpsKeys(cached); !slices.Equal(got, want) {
		t.Fatalf("cache form: %v, want %v", got, want)
	}
	if res, _, err := r.do(cg, now.Add(time.Hour)); err != nil || !res.Replayed {
		t.Fatalf("the CreditGrant's grant again: %+v %v, want a replay", res, err)
	}
	a := r.account()
	if !a.HoldsGrantKey("creditgrant:promo", now, r.rules) || a.HoldsGrantKey("creditgrant:other", now, r.rules) {
		t.Fatal("HoldsGrantKey does not tell the key applied from another")
	}
	if a.HoldsGrantKey("creditgrant:promo", now.Add(r.rules.GrantKeyRetention+time.Second), r.rules) {
		t.Fatal("a key past the retention is still held")
	}
	plain := newRecord(t, 3)
	_, _, _ = plain.do(Operation{Kind: OpGrant, Amount: 1, IdempotencyKey: "k"}, now)
	c := plain.obj.DeepCopy()
	CacheForm(c)
	if GitOpsKeys(plain.obj) != nil || GitOpsKeys(c) != nil {
		t.Fatal("a record without CreditGrants lists some")
	}
	if _, ok := c.Annotations[GitOpsKeysAnnotation]; ok {
		t.Fatal("the cache form of a record without CreditGrants carries their annotation")
	}
}
