package credits

import (
	"testing"
	"time"
)

// TestListPacerGivesWayToWaitingReads: with no read waiting for the apiserver, the
// informer's list is not paused; while one waits, it is, but its pauses never add up to
// more than half of the list's time (so a steady flow of new users cannot stall it); once
// the read is answered, the next object goes through at once.
func TestListPacerGivesWayToWaitingReads(t *testing.T) {
	p := NewListPacer()
	objects := 0
	work := func(in any) (any, error) { // an object's decode and transform: 1 ms
		time.Sleep(time.Millisecond)
		objects++
		return in, nil
	}
	transform := p.Transform(work)
	start := time.Now()
	for range 50 {
		if _, err := transform(nil); err != nil {
			t.Fatal(err)
		}
	}
	if p.paused != 0 {
		t.Fatalf("the list paused %v with no read waiting", p.paused)
	}

	done := p.reading()
	for time.Since(start) < 400*time.Millisecond {
		if _, err := transform(nil); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	if p.paused < elapsed/4 || p.paused > elapsed/2+10*time.Millisecond {
		t.Fatalf("with a read waiting, the list paused %v of %v: want about half, never more", p.paused, elapsed)
	}
	if objects < 100 {
		t.Fatalf("%d objects went through in %v: the pauses stalled the list", objects, elapsed)
	}
	done()
	before := p.paused
	if _, err := transform(nil); err != nil || p.paused != before {
		t.Fatalf("once the read was answered the list paused %v more (%v)", p.paused-before, err)
	}
	var none *ListPacer
	none.reading()() // a store without a pacer
}
