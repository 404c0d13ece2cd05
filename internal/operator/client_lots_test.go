package operator_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gitread/usercredits-operator/pkg/client"
)

// TestGoClientLotsAgainstTheOperator: Grant's terms, Grants and Void through pkg/client
// against the operator: the lots in spending order, a retry of a grant with its key, the
// same key with other terms, and the refusals of Void as typed errors that change nothing.
func TestGoClientLotsAgainstTheOperator(t *testing.T) {
	ctx := context.Background()
	user := "user_GoClientLots1"
	admin := newClient(t, apiBase, tokenFile(t, "go-client-lots", "credits-admin"), nil)
	expires := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	if n, err := admin.Grant(ctx, user, 20); err != nil || n != 20 {
		t.Fatalf("Grant: %d %v", n, err)
	}
	if n, err := admin.Grant(ctx, user, 5, client.WithExpiry(expires), client.WithPriority(10), client.WithReason("welcome"),
		client.WithIdempotencyKey("promo-go-1")); err != nil || n != 25 {
		t.Fatalf("Grant with terms: %d %v", n, err)
	}
	if n, err := admin.Grant(ctx, user, 5, client.WithExpiry(expires), client.WithPriority(10), client.WithReason("welcome"),
		client.WithIdempotencyKey("promo-go-1")); err != nil || n != 25 {
		t.Fatalf("the same grant again with its key: %d %v (want the original answer)", n, err)
	}
	if _, err := admin.Grant(ctx, user, 5, client.WithPriority(11), client.WithIdempotencyKey("promo-go-1")); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("the key with other terms: %v, want ErrConflict", err)
	}
	if n, err := admin.Consume(ctx, user, 2); err != nil || n != 23 {
		t.Fatalf("Consume: %d %v", n, err)
	}
	grants, err := admin.Grants(ctx, user)
	if err != nil || len(grants) != 2 {
		t.Fatalf("Grants: %+v %v", grants, err)
	}
	promo, plain := grants[0], grants[1]
	if promo.Credits != 5 || promo.Remaining != 3 || !promo.ExpiresAt.Equal(expires) || promo.Priority != 10 || promo.Reason != "welcome" ||
		promo.Source != "api" || promo.GrantedAt.IsZero() {
		t.Fatalf("the promotion, spent first (priority 10): %+v", promo)
	}
	if plain.Credits != 20 || plain.Remaining != 20 || !plain.ExpiresAt.IsZero() || plain.Priority != 50 || plain.ID == promo.ID {
		t.Fatalf("the plain grant: %+v", plain)
	}

	if n, err := admin.Void(ctx, user, promo.ID); err != nil || n != 20 {
		t.Fatalf("Void: %d %v", n, err)
	}
	for name, id := range map[string]string{"twice": promo.ID, "an unknown lot": "lot_0000000000000000", "a malformed ID": "no such/lot"} {
		_, err := admin.Void(ctx, user, id)
		want := map[string]error{"twice": client.ErrConflict}[name]
		if want == nil {
			want = client.ErrNotFound
		}
		if !errors.Is(err, want) {
			t.Fatalf("Void %s: %v, want %v", name, err, want)
		}
	}
	if n, err := admin.Balance(ctx, user); err != nil || n != 20 {
		t.Fatalf("after the refused voids: %d %v, want 20", n, err)
	}
	if grants, err := admin.Grants(ctx, user); err != nil || len(grants) != 1 || grants[0].ID != plain.ID {
		t.Fatalf("Grants after the void: %+v %v", grants, err)
	}
	if h, err := admin.Transactions(ctx, user); err != nil || h[0].Type != "void" || h[0].Credits != 3 || h[0].Reference != promo.ID {
		t.Fatalf("Transactions: %+v %v, want the void of 3 naming the lot first", h, err)
	}

	consumer := newClient(t, apiBase, tokenFile(t, "go-client-lots-consumer", "credits-consumer"), nil)
	if _, err := consumer.Void(ctx, user, plain.ID); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("Void without the grant verb: %v, want ErrForbidden", err)
	}
}
