package operator

import "testing"

func TestSteadyGCPercentBoundsGarbageNotCollections(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 100},         // nothing measured: Go's default
		{16 * mib, 400},  // a small cache: 64 MiB of garbage between collections
		{64 * mib, 100},  // the floor is the whole live heap
		{100 * mib, 64},  // 64 MiB of garbage
		{128 * mib, 50},  // half the live heap
		{1024 * mib, 50}, // never below half
	} {
		if got := steadyGCPercent(c.live); got != c.want {
			t.Errorf("steadyGCPercent(%d MiB) = %d, want %d", c.live/mib, got, c.want)
		}
	}
}
