package credits

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestUserLocksSerializeAndHonorContext(t *testing.T) {
	locks := newUserLocks()
	unlock, err := locks.lock(context.Background(), "u")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := locks.lock(ctx, "u"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock on the same user: %v, want a deadline error", err)
	}
	other, err := locks.lock(context.Background(), "v")
	if err != nil {
		t.Fatalf("another user's lock must not wait: %v", err)
	}
	other()
	unlock()
	again, err := locks.lock(context.Background(), "u")
	if err != nil {
		t.Fatal(err)
	}
	again()
	if n := len(locks.locks); n != 0 {
		t.Fatalf("%d lock entries left behind", n)
	}
}
