package operator

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/gitread/usercredits-operator/internal/credits"
)

// releaseListMemory returns to the OS, once, the memory the initial list of every object
// took. Decoding 100,000 objects allocates several times what the cache keeps; the Go
// runtime would hand that back only gradually, so a replica would hold it for minutes
// after start (make bench: RSS 534 MiB right after sync for a 232 MiB heap).
//
// It then sets the garbage collector's target (unless GOGC is set) with steadyGCPercent.
// Once synced, most of the heap is the cache, which lives as long as the process: letting
// garbage grow to its whole size again before each collection (about 130 MiB at 100,000
// users) buys nothing but RSS; a small cache gets a higher target, so that request load
// does not collect it over and over.
type releaseListMemory struct {
	cache   cache.Cache
	users   *credits.Index
	log     logr.Logger
	started time.Time // when the manager was set up: the log says how long warming up took
}

// steadyGCPercent is GOGC once the cache has synced, for a live heap of live bytes: the
// garbage allowed between collections is half the live heap or garbageFloor, whichever is
// larger. Each collection scans the whole live heap: a small cache collected every few MiB
// of request garbage (at 50 %) spent 16 % of the API's CPU under GET load (make bench
// profile). A floor in bytes bounds what the fewer collections cost in memory.
func steadyGCPercent(live uint64) int {
	const garbageFloor = 64 << 20
	if live == 0 {
		return 100
	}
	return int(max(50, garbageFloor*100/live))
}

// Start waits for the cache's first sync and frees what the list left behind.
func (r releaseListMemory) Start(ctx context.Context) error {
	if !r.cache.WaitForCacheSync(ctx) {
		return nil
	}
	for !r.users.HasSynced() {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(10 * time.Millisecond):
		}
	}
	debug.FreeOSMemory() // collects first, so the live heap below is what the cache holds
	var stats runtime.MemStats
	runtime.ReadMemStats(&stats)
	gcPercent, set := os.LookupEnv("GOGC") // the operator's choice never overrides the environment's
	if !set {
		percent := steadyGCPercent(stats.HeapAlloc)
		debug.SetGCPercent(percent)
		gcPercent = strconv.Itoa(percent)
	}
	r.log.Info("informer cache synced: every user is served from memory", "afterStart", time.Since(r.started).Round(time.Millisecond).String(),
		"liveHeapMiB", stats.HeapAlloc>>20, "gcPercent", gcPercent)
	return nil
}

// NeedLeaderElection is false: every replica lists every object.
func (releaseListMemory) NeedLeaderElection() bool { return false }
