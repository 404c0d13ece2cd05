package httpapi

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLazyDeadlineBehavesAsADeadline(t *testing.T) {
	ctx, cancel := withLazyDeadline(context.Background(), 30*time.Millisecond)
	defer cancel()
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > 30*time.Millisecond {
		t.Fatalf("deadline %v %v", d, ok)
	}
	if ctx.Err() != nil {
		t.Fatal("done before its deadline")
	}
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
		t.Fatal("Done never fired")
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err %v", ctx.Err())
	}

	// Never waited on: the deadline still shows in Err, and a parent's cancellation too.
	idle, cancelIdle := withLazyDeadline(context.Background(), time.Millisecond)
	defer cancelIdle()
	time.Sleep(5 * time.Millisecond)
	if !errors.Is(idle.Err(), context.DeadlineExceeded) {
		t.Fatalf("unarmed Err after the deadline: %v", idle.Err())
	}
	parent, cancelParent := context.WithCancel(context.Background())
	child, cancelChild := withLazyDeadline(parent, time.Hour)
	defer cancelChild()
	cancelParent()
	if !errors.Is(child.Err(), context.Canceled) {
		t.Fatalf("parent canceled, child Err %v", child.Err())
	}
	select {
	case <-child.Done():
	case <-time.After(time.Second):
		t.Fatal("a canceled parent did not end the child")
	}
	// Derived contexts see the deadline.
	derived, cancelDerived := context.WithCancel(ctx)
	defer cancelDerived()
	if derived.Err() == nil {
		t.Fatal("a context derived from an expired one is live")
	}
}
