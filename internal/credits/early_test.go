package credits

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// TestEarlyChargesAreBounded: entries past the retention are dropped, and the oldest
// beyond the bound, leaving room for the one being written.
func TestEarlyChargesAreBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	data := map[string]string{}
	entry := func(at time.Time) string {
		b, _ := json.Marshal(earlyCharge{Refunded: 1, Amount: 1, At: at.Unix()})
		return string(b)
	}
	data["pi_old"] = entry(now.Add(-EarlyChargeRetention - time.Second))
	data["pi_damaged"] = "{"
	for i := range EarlyChargesMax {
		data[fmt.Sprint("pi_", i)] = entry(now.Add(-time.Duration(i) * time.Second)) // pi_0 newest
	}
	out := pruneEarly(data, now)
	if len(out) != EarlyChargesMax-1 {
		t.Fatalf("%d entries kept, want %d", len(out), EarlyChargesMax-1)
	}
	for _, gone := range []string{"pi_old", "pi_damaged", fmt.Sprint("pi_", EarlyChargesMax-1)} {
		if _, ok := out[gone]; ok {
			t.Errorf("%s kept", gone)
		}
	}
	if _, ok := out["pi_0"]; !ok {
		t.Error("the newest entry dropped")
	}
}
