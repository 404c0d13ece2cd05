package operator_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// hotOp is one operation a worker sent, and what came of it.
type hotOp struct {
	kind     string
	credits  int64
	status   int
	replayed bool
	holdID   string
}

// TestHotUserGroupCommitMatchesASequentialModel sends random mixes of consume, grant, set,
// reserve and release, with and without keys, on one user from many goroutines over two
// replicas. Group commit decides each in arrival order within a write; the user's history,
// written in the same writes, is the order the apiserver serialized them in. Replaying it
// as a sequential model must reproduce every balance it records, its entries must be
// exactly the acknowledged operations (replays and refusals add none), and it must end at
// the stored balance.
func TestHotUserGroupCommitMatchesASequentialModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("USERCREDITS_MODEL_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (USERCREDITS_MODEL_SEED=%d replays it)", seed, seed)
	bases := twoReplicas(t)
	admin := serviceAccountToken(t, "hot-admin", "credits-admin")
	user := "user_Hot1"
	const rounds, workers, perWorker = 3, 16, 5
	total := 0
	for r := range rounds {
		start := int64(20 + r*7)
		if status, body := request(t, "POST", creditsURL(bases[0], "/api/credits", user), admin, fmt.Sprintf(`{"credits":%d}`, start)); status != 200 {
			t.Fatalf("round %d: set: %d %s", r, status, body)
		}
		sent := make([][]hotOp, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(seed, uint64(r*workers+w)))
				var holds []string
				for i := range perWorker {
					sent[w] = append(sent[w], hotRequest(t, rng, bases[rng.IntN(2)], admin, user, fmt.Sprintf("hot-%d-%d-%d", r, w, i), &holds))
				}
			})
		}
		wg.Wait()
		total += workers * perWorker
		checkHistoryAgainstOps(t, r, user, admin, start, sent)
	}
	t.Logf("%d concurrent operations on one user over 2 replicas, in %d rounds: the history replays exactly", total, rounds)
}

// hotRequest sends one random operation; holds are this worker's open holds.
func hotRequest(t *testing.T, rng *rand.Rand, base, admin, user, key string, holds *[]string) hotOp {
	keyed := rng.IntN(2) == 0
	hdr := []string{}
	if keyed {
		hdr = []string{"Idempotency-Key", key}
	}
	n := int64(1 + rng.IntN(4))
	op := hotOp{credits: n}
	path, body := "", fmt.Sprintf(`{"credits":%d}`, n)
	switch pick := rng.IntN(10); {
	case pick < 4:
		op.kind, path = "consume", "/api/credits/consume"
	case pick < 6:
		op.kind, path, hdr = "grant", "/api/credits/grant", []string{"Idempotency-Key", key}
	case pick < 7:
		n = int64(10 + rng.IntN(30))
		op.kind, op.credits, path, body = "set", n, "/api/credits", fmt.Sprintf(`{"credits":%d}`, n)
	case pick < 9 || len(*holds) == 0:
		op.kind, path = "reserve", "/api/credits/reserve"
	default:
		id := (*holds)[0]
		*holds = (*holds)[1:]
		op.kind, op.holdID, path, body = "release", id, "/api/credits/reservations/"+id+"/release", ""
	}
	resp := doRequest(t, "POST", creditsURL(base, path, user), admin, body, hdr...)
	op.status, op.replayed = resp.status, resp.header.Get("Idempotent-Replayed") == "true"
	if op.kind == "reserve" && resp.status == 200 {
		var r reserved
		_ = json.Unmarshal([]byte(resp.body), &r)
		*holds = append(*holds, r.ReservationID)
	}
	if keyed && rng.IntN(3) == 0 && op.kind != "release" { // a retrying client sends it again
		again := doRequest(t, "POST", creditsURL(base, path, user), admin, body, hdr...)
		switch {
		case resp.status == 200 && (again.status != 200 || again.body != resp.body || again.header.Get("Idempotent-Replayed") != "true"):
			t.Errorf("%s %s retried with its key: %d %s (replayed %q), first %d %s", op.kind, key, again.status, again.body, again.header.Get("Idempotent-Replayed"), resp.status, resp.body)
		case resp.status == 402 && again.status == 200:
			// A refusal records nothing: the retry, after a grant, applied it.
			op.status, op.replayed = 200, again.header.Get("Idempotent-Replayed") == "true"
			if op.kind == "reserve" {
				var r reserved
				_ = json.Unmarshal([]byte(again.body), &r)
				*holds = append(*holds, r.ReservationID)
			}
		}
	}
	if resp.status != 200 && resp.status != 402 {
		t.Errorf("%s %s: %d %s", op.kind, key, resp.status, resp.body)
	}
	return op
}

// checkHistoryAgainstOps replays the round's history (everything after its opening set)
// as a sequential model and matches it against the operations the workers sent.
func checkHistoryAgainstOps(t *testing.T, round int, user, admin string, start int64, sent [][]hotOp) {
	t.Helper()
	status, h := readHistory(t, creditsURL(apiBase, "/api/credits/transactions", user), admin)
	if status != 200 {
		t.Fatalf("round %d: history: %d", round, status)
	}
	acked := map[string]int{}
	released := map[int64]int{}
	for _, ops := range sent {
		for _, op := range ops {
			if op.status == 200 && !op.replayed {
				acked[op.kind]++
			}
		}
	}
	want := 0
	for _, n := range acked {
		want += n
	}
	if len(h.Transactions) < want+1 {
		t.Fatalf("round %d: %d history entries for %d acknowledged operations", round, len(h.Transactions), want)
	}
	entries := h.Transactions[:want+1] // newest first; the last is the round's opening set
	if open := entries[want]; open.Type != "set" || open.Balance != start {
		t.Fatalf("round %d: the history does not start at the round's set: %+v", round, open)
	}
	balance, seen := start, map[string]int{}
	for i := want - 1; i >= 0; i-- {
		e := entries[i]
		switch e.Type {
		case "set":
			balance = e.Credits
		case "consume", "reserve":
			balance -= e.Credits
		case "grant":
			balance += e.Credits
		case "release":
			balance += e.Credits
			released[e.Credits]++
		default:
			t.Fatalf("round %d: unexpected %s in the history", round, e.Type)
		}
		if balance < 0 || balance != e.Balance {
			t.Fatalf("round %d: replaying entry %s %d gives %d, the history says %d", round, e.Type, e.Credits, balance, e.Balance)
		}
		seen[e.Type]++
	}
	for kind, n := range acked {
		if seen[kind] != n {
			t.Errorf("round %d: %d %s acknowledged, %d in the history", round, n, kind, seen[kind])
		}
	}
	if stored := storedBalanceOf(t, user); stored != balance {
		t.Fatalf("round %d: stored %d, the sequential model ends at %d", round, stored, balance)
	}
}
