package operator_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The chaos test's shape: 100 users, 100 consumes of 1 each (10,000 in all), a base grant
// of 150 credits each and 3 more grants, 2 lots each that expire during the run (priority
// 100: spent last, so they expire whole and the books close exactly), every grant sent 4
// times (the original, a copy at once to the other replica, one later, one at the end), 8
// workers, a replica killed every 3 s.
const (
	chaosUsers        = 100
	chaosConsumes     = 100
	chaosBase         = 150
	chaosExtraGrants  = 3
	chaosWorkers      = 8
	chaosKillPeriod   = 3 * time.Second
	chaosExpiryBound  = 5 * time.Second
	chaosLastReplayed = 20 // consumes replayed at the end, the last of each user's (within the key ledger)
)

// chaosKeyed is one keyed request (a grant or a consume) and every answer it had.
type chaosKeyed struct {
	user, key string
	grant     bool
	credits   int64
	expires   time.Time // zero: never
	mu        sync.Mutex
	applied   int      // answers that were not replays: at most one
	bodies    []string // every 200 answer: all the same
}

// chaosTask is one send of a keyed request (copies of it at once), each retried until it
// has an answer.
type chaosTask struct {
	req    *chaosKeyed
	path   string
	body   string
	copies int
}

// chaosTally counts the answers a kill cut off, and what their retries answered.
type chaosTally struct {
	interrupted, replayedAfterKill, fresh atomic.Int64
}

// TestLotsChaos: under replicas killed every few seconds, with every grant sent 4 times and
// lots expiring on the way, no grant and no consume applies twice (a keyed request whose
// answer a kill cut off is retried elsewhere and answers as a replay), no balance goes
// negative, the lot invariant holds at every stored version the test sees, the books of
// every user close exactly, and every lot whose time came was removed within 5 s of it.
//
// CreditGrant (Git-authored grants) is not wired on this branch: when it is, chaosGrant's
// sends gain a CreditGrant applied 3 times (hook: the "grant" tasks in lotsChaosPlan).
func TestLotsChaos(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("USERCREDITS_MODEL_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (USERCREDITS_MODEL_SEED=%d replays the plan)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 99))
	admin := serviceAccountToken(t, "lots-chaos-admin", "credits-admin")
	prefix := fmt.Sprintf("user_Chaos%d_", seed%1_000_000)
	ctx, stopWatch := context.WithCancel(context.Background())
	seen := watchLots(t, ctx, prefix)
	began := time.Now()
	fleet := newChaosFleet(t, chaosKillPeriod)

	grants, consumes, first, later, last := lotsChaosPlan(rng, prefix, began)
	tally := &chaosTally{}
	run := func(tasks []chaosTask) {
		queue := make(chan chaosTask)
		var wg sync.WaitGroup
		for range chaosWorkers {
			wg.Go(func() {
				for task := range queue {
					chaosSend(t, fleet, admin, task, tally)
				}
			})
		}
		for _, task := range tasks {
			queue <- task
		}
		close(queue)
		wg.Wait()
	}
	run(first)
	run(later)
	run(last)
	sent := time.Since(began)
	kills := fleet.shutdown()
	t.Logf("%d consumes (%d sent again at the end) and %d grant sends over %v with %d replicas killed: %d answers cut off "+
		"by a kill, of whose retries %d answered as replays and %d applied (the cut request had not)", len(consumes),
		len(last)-len(grants), len(grants)*4, sent.Round(time.Millisecond), kills, tally.interrupted.Load(), tally.replayedAfterKill.Load(), tally.fresh.Load())
	if kills < 3 {
		t.Errorf("only %d replicas were killed during the run", kills)
	}

	// Every lot's time has come by now, or comes within the bound.
	latest := slices.MaxFunc(grants, func(a, b *chaosKeyed) int { return a.expires.Compare(b.expires) }).expires
	if wait := time.Until(latest.Add(chaosExpiryBound + time.Second)); wait > 0 {
		time.Sleep(wait)
	}
	stopWatch()
	checkChaosBooks(t, grants, consumes, seen, prefix)
	t.Logf("the whole test took %v", time.Since(began).Round(time.Millisecond))
}

// lotsChaosPlan is every request of the run in three waves: the base and expiring grants;
// the consumes, the other grants and the first replays, shuffled; the last replays.
func lotsChaosPlan(rng *rand.Rand, prefix string, began time.Time) (grants, consumes []*chaosKeyed, first, later, last []chaosTask) {
	grantTask := func(g *chaosKeyed, copies int) chaosTask {
		body := fmt.Sprintf(`{"credits":%d}`, g.credits)
		if !g.expires.IsZero() {
			body = fmt.Sprintf(`{"credits":%d,"expiresAt":%q,"priority":100,"reason":"expires during the chaos"}`, g.credits, refTime(g.expires))
		}
		return chaosTask{req: g, path: "/api/credits/grant", body: body, copies: copies}
	}
	for u := range chaosUsers {
		user := fmt.Sprintf("%s%03d", prefix, u)
		base := &chaosKeyed{user: user, key: user + "-base", grant: true, credits: chaosBase}
		grants = append(grants, base)
		first = append(first, grantTask(base, 2))
		// Two lots that expire 10–40 s into the run, a second apart at least.
		at := began.Add(10*time.Second + time.Duration(rng.IntN(25))*time.Second).Truncate(time.Second)
		for i := range 2 {
			g := &chaosKeyed{user: user, key: fmt.Sprintf("%s-expiring-%d", user, i), grant: true, credits: int64(5 + rng.IntN(6)),
				expires: at.Add(time.Duration(i*(1+rng.IntN(5))) * time.Second)}
			grants = append(grants, g)
			first = append(first, grantTask(g, 2))
		}
		for i := range chaosExtraGrants {
			g := &chaosKeyed{user: user, key: fmt.Sprintf("%s-grant-%d", user, i), grant: true, credits: int64(1 + rng.IntN(10))}
			grants = append(grants, g)
			later = append(later, grantTask(g, 2))
		}
		for i := range chaosConsumes {
			c := &chaosKeyed{user: user, key: fmt.Sprintf("%s-consume-%d", user, i), credits: 1}
			consumes = append(consumes, c)
			later = append(later, chaosTask{req: c, path: "/api/credits/consume", body: `{"credits":1}`, copies: 1})
		}
	}
	for _, g := range grants {
		later = append(later, grantTask(g, 1)) // the second replay
		last = append(last, grantTask(g, 1))   // the third, after more kills
	}
	rng.Shuffle(len(later), func(i, j int) { later[i], later[j] = later[j], later[i] })
	for u := range chaosUsers { // consumes replayed at the end: each user's last ones are still in its key ledger
		user := fmt.Sprintf("%s%03d", prefix, u)
		n := 0
		for i := len(later) - 1; i >= 0 && n < chaosLastReplayed; i-- {
			if t := later[i]; t.req.user == user && !t.req.grant {
				last = append(last, t)
				n++
			}
		}
	}
	return grants, consumes, first, later, last
}
