package operator_test

import (
	"strconv"
	"testing"
	"time"
)

// TestInitialListWatchOutlastsClientGoTimeout: the watch that streams a replica's first
// list of every UserCredits asks the apiserver for an hour, not client-go's 5–10 minutes,
// after which the apiserver would end a stream still running (1,000,000 users take ~7
// minutes here) and the informer would list again from nothing, perhaps forever.
func TestInitialListWatchOutlastsClientGoTimeout(t *testing.T) {
	proxy := newAPIServerProxy(t, false, 0)
	_, synced := proxiedReplica(t, proxy)
	if !synced(30 * time.Second) {
		t.Fatal("the replica never synced")
	}
	proxy.mu.Lock()
	timeouts := append([]string(nil), proxy.initialWatchTimeouts...)
	proxy.mu.Unlock()
	if len(timeouts) == 0 {
		t.Fatal("the replica streamed no first list through a watch (sendInitialEvents): nothing to check")
	}
	for _, s := range timeouts {
		if secs, err := strconv.Atoi(s); err != nil || secs < 3600 {
			t.Errorf("the first list's watch asked for timeoutSeconds=%q; want at least 3600", s)
		}
	}
}
