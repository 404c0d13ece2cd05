package account

import "testing"

func TestCountCredits(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 credits", 1: "1 credit", 2: "2 credits", -1: "-1 credit", -2: "-2 credits", 11: "11 credits",
		MaxBalance: "9007199254740991 credits",
	} {
		if got := CountCredits(n); got != want {
			t.Errorf("CountCredits(%d) = %q, want %q", n, got, want)
		}
	}
}
