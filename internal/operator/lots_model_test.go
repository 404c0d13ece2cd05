package operator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// lotsGuard: no request is sent this close before a lot's expiry, so that each request is
// decided before or after it; one that still straddles it is checked against both.
const lotsGuard = 1500 * time.Millisecond

// TestLotsMatchTheModel drives random sequences of credit-lot operations, one user each,
// several users at once, over two replicas: grants (with and without expiry and priority,
// keyed, replayed, sent twice at once), consumes (keyed or not, by the user or a service,
// bursts of concurrent ones), reserves, captures (partial, all, none, too many), releases,
// voids, sets, keys reused for other requests, kubectl edits that keep the CRD's rule or
// break it, CreditGrants (created, pruned and re-created, their status lost, their name
// reused with other terms: lots_modelcg_test.go), and lots that expire a few seconds after
// their grant, removed by the controller or by the next write (the operator's own clock:
// the test waits for the time to come). Every answer, every stored record, GET
// /api/credits, /grants and /transactions must match a reference model written from the
// contract (lots_refmodel_test.go), and the lot invariant must hold at every observation.
//
// Why sequences per user, not racing rounds as TestRandomInterleavingsMatchTheModel: with
// lots the state after concurrent requests depends on their order (which lots a hold took,
// which a set below the balance spent, the order of grants made within one second), so a
// round's end could be checked only as a sum; one request at a time per user checks each
// answer and each lot exactly. Concurrency is still there: users run at once on two
// replicas, the controller's expiry writes race the API's, copies of one keyed request go
// to both replicas at once (one applies, the others answer it as a replay), and bursts of
// keyless consumes race (their answers are checked as a set: which consume got which
// balance is theirs to decide, the set of balances is not). USERCREDITS_MODEL_SEED replays
// the same choices (timing aside: which expiries a step meets may differ); 4 users × 80
// steps take about 20 s.
func TestLotsMatchTheModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("USERCREDITS_MODEL_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (USERCREDITS_MODEL_SEED=%d replays it)", seed, seed)
	bases := twoReplicas(t)
	admin := serviceAccountToken(t, "lots-model-admin", "credits-admin")
	const users, steps = 4, 80
	var wg sync.WaitGroup
	for u := range users {
		wg.Go(func() {
			r := &lotsRun{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, uint64(u))), bases: bases, admin: admin,
				user: fmt.Sprintf("user_LotsModel%d_%d", u, seed%1_000_000), m: newRefModel(), kinds: map[string]int{},
				cgPrefix: fmt.Sprintf("lotsmodel-%d-u%d", seed%1_000_000, u), cgLots: map[string]string{}, sent: map[string]int{}}
			r.run(steps)
			if err := deleteCreditGrants(r.cgPrefix); err != nil {
				t.Error(err)
			}
			t.Logf("%s: %d steps, %d requests %v, %d CreditGrants (%d first told \"granted before\"), %d controller expiries, "+
				"%d straddles; differences by kind: %v", r.user, r.step-1, r.requests, r.sent, len(r.cgLots), r.cgRaces, r.expiries, r.straddles, r.kinds)
		})
	}
	wg.Wait()
}

// lotsRun is one user's sequence.
type lotsRun struct {
	t                             *testing.T
	seed                          uint64
	rng                           *rand.Rand
	bases                         [2]string
	admin, user                   string
	m                             *refModel
	recent                        []refOp // keyed operations applied lately, to repeat
	trail                         []string
	step, steps, failures, checks int
	kinds                         map[string]int // differences reported, by kind
	requests, expiries, straddles int
	cgPrefix                      string            // names (and labels) the user's CreditGrants
	cgLots                        map[string]string // the lot each CreditGrant made, by name
	cgRaces                       int               // first applications whose status says "granted before"
	sent                          map[string]int    // operations sent, by kind
}

// served is one answer.
type served struct {
	status   int
	body     string
	replayed bool
}

func (s served) String() string {
	return fmt.Sprintf("%d %s replayed=%v", s.status, s.body, s.replayed)
}

// fail reports a difference of a kind with the operations that led to it: the first of
// each kind in full, the others counted (one difference tends to recur until the state
// moves on), so that one run shows every kind it meets. The run stops after many.
func (r *lotsRun) fail(kind, format string, args ...any) {
	r.t.Helper()
	r.failures++
	if r.kinds[kind]++; r.kinds[kind] > 1 {
		return
	}
	from := max(0, len(r.trail)-12)
	r.t.Errorf("%s (USERCREDITS_MODEL_SEED=%d) step %d: %s: %s\nlast operations:\n  %s", r.user, r.seed, r.step, kind,
		fmt.Sprintf(format, args...), strings.Join(r.trail[from:], "\n  "))
}

func (r *lotsRun) note(format string, args ...any) {
	r.trail = append(r.trail, fmt.Sprintf("%d: ", r.step)+fmt.Sprintf(format, args...))
}

func (r *lotsRun) stored() *creditsv1alpha1.UserCredits { return statusOf(r.t, r.user) }

func (r *lotsRun) run(steps int) {
	r.steps = steps
	r.act([]refOp{{kind: "set", n: int64(10 + r.rng.IntN(20))}})
	for r.step = 1; r.step <= steps && r.failures < 40; r.step++ {
		r.awaitExpiry()
		switch p := r.rng.IntN(100); {
		case p < 13:
			r.act(r.copies(r.grantOp()))
		case p < 18:
			r.act([]refOp{r.creditGrantOp()})
		case p < 34:
			op := refOp{kind: "consume", n: int64(1 + r.rng.IntN(5)), asUser: r.rng.IntN(3) == 0}
			if r.rng.IntN(2) == 0 {
				op.key = r.key("c")
			}
			r.act(r.copies(op))
		case p < 38: // a burst of keyless consumes of 1, racing over both replicas
			burst := make([]refOp, 3+r.rng.IntN(4))
			for i := range burst {
				burst[i] = refOp{kind: "consume", n: 1, asUser: r.rng.IntN(2) == 0}
			}
			r.act(burst)
		case p < 50:
			op := refOp{kind: "reserve", n: int64(1 + r.rng.IntN(6)), asUser: r.rng.IntN(3) == 0}
			if r.rng.IntN(3) == 0 {
				op.key = r.key("r")
			}
			r.act(r.copies(op))
		case p < 64:
			r.act([]refOp{r.closeOp()})
		case p < 71:
			r.act(r.copies(r.voidOp()))
		case p < 77:
			op := refOp{kind: "set", n: int64(r.rng.IntN(40))}
			if r.rng.IntN(2) == 0 {
				op.key = r.key("s")
			}
			r.act(r.copies(op))
		case p < 86 && len(r.recent) > 0: // a retry of a recent keyed request, maybe to both replicas at once
			op := r.recent[r.rng.IntN(len(r.recent))]
			op.recreate = op.kind == "creditgrant"
			if r.rng.IntN(5) == 0 && (op.expires.IsZero() || time.Until(op.expires) > lotsGuard) { // the same key for another request
				op.n++ // what a void sends is its lot
				if op.kind == "void" {
					op.lot = "lot_0000000000000000"
				}
			}
			r.act(r.copies(op))
		case p < 93:
			r.edit()
		default:
			r.act([]refOp{{kind: "consume", n: int64(1 + r.rng.IntN(3))}})
		}
	}
}

func (r *lotsRun) key(kind string) string {
	return fmt.Sprintf("%s-%s-%d", r.user, kind, r.step)
}

// copies sends a keyed request once, or two or three times at once (a client retrying);
// a CreditGrant once (its copies are the replicas' controllers).
func (r *lotsRun) copies(op refOp) []refOp {
	if op.key == "" || op.kind == "creditgrant" || r.rng.IntN(4) != 0 {
		return []refOp{op}
	}
	return slices.Repeat([]refOp{op}, 2+r.rng.IntN(2))
}

var lotReasons = []string{"monthly allowance", "launch promo", "refund for job 7", "crédit offert ✓"}

func (r *lotsRun) grantOp() refOp {
	op := refOp{kind: "grant", n: int64(1 + r.rng.IntN(20)), key: r.key("g")}
	if r.rng.IntN(10) < 4 {
		p := []int32{0, 10, 50, 90, 100}[r.rng.IntN(5)]
		op.priority = &p
	}
	if r.rng.IntN(10) < 3 {
		op.reason = lotReasons[r.rng.IntN(len(lotReasons))]
	}
	if r.rng.IntN(10) < 6 {
		op.expires = r.expiry()
	}
	return op
}

// expiry is when a new lot expires: 3–6 s ahead, or with the lot already due to expire, at
// the same instant (one expiry pending at a time keeps each removal one controller write).
func (r *lotsRun) expiry() time.Time {
	now := time.Now()
	if pending := r.m.nextDue(); !pending.IsZero() {
		if pending.Sub(now) > lotsGuard+time.Second {
			return pending
		}
		return time.Time{}
	}
	return now.Add(3*time.Second + time.Duration(r.rng.IntN(3000))*time.Millisecond).Truncate(time.Second)
}

// closeOp captures (part, all, none or too much) or releases an open hold, or repeats the
// close of a closed one, or names one that never was.
func (r *lotsRun) closeOp() refOp {
	var closed []string
	for id := range r.m.closed {
		closed = append(closed, id)
	}
	slices.Sort(closed)
	op := refOp{kind: "capture", asUser: r.rng.IntN(3) == 0}
	if r.rng.IntN(3) == 0 {
		op.kind = "release"
	}
	switch p := r.rng.IntN(10); {
	case p < 7 && len(r.m.holds) > 0:
		h := r.m.holds[r.rng.IntN(len(r.m.holds))]
		op.hold = h.id
		switch q := r.rng.IntN(10); {
		case q < 4:
			op.all = true
		case q < 9:
			op.n = r.rng.Int64N(h.credits + 1)
		default:
			op.n = h.credits + 1
		}
	case p < 9 && len(closed) > 0:
		op.hold = closed[r.rng.IntN(len(closed))]
		c := r.m.closed[op.hold]
		op.all, op.n = r.rng.IntN(2) == 0, c.captured
	default:
		op.hold = "rsv_0000000000000000"
	}
	if op.kind == "release" {
		op.all, op.n = false, 0
	}
	return op
}

// voidOp voids one of the user's lots (open, spent down, closed, the balance lot) or one
// that never was.
func (r *lotsRun) voidOp() refOp {
	op := refOp{kind: "void", lot: "lot_0000000000000000"}
	closed := 0
	var ids []string
	for _, l := range r.m.lots {
		if l.closed != "" {
			closed++
		}
		if l.id != refBalanceLot || r.rng.IntN(4) == 0 {
			ids = append(ids, l.id)
		}
	}
	if closed >= 15 { // past 20 closed lots, which are forgotten first is the operator's to choose
		return refOp{kind: "consume", n: 1}
	}
	if len(ids) > 0 && r.rng.IntN(8) != 0 {
		op.lot = ids[r.rng.IntN(len(ids))]
	}
	if r.rng.IntN(2) == 0 {
		op.key = r.key("v")
	}
	return op
}

// request is op as HTTP: method, URL, token and body.
func (r *lotsRun) request(op refOp) (url, token, body string) {
	path := map[string]string{"set": "/api/credits", "consume": "/api/credits/consume", "grant": "/api/credits/grant",
		"reserve": "/api/credits/reserve", "capture": "/api/credits/reservations/" + op.hold + "/capture",
		"release": "/api/credits/reservations/" + op.hold + "/release", "void": "/api/credits/grants/" + op.lot + "/void"}[op.kind]
	switch op.kind {
	case "set", "consume":
		body = fmt.Sprintf(`{"credits":%d}`, op.n)
	case "reserve":
		body = fmt.Sprintf(`{"credits":%d,"ttlSeconds":600}`, op.n)
	case "capture":
		if !op.all {
			body = fmt.Sprintf(`{"credits":%d}`, op.n)
		}
	case "grant":
		body = fmt.Sprintf(`{"credits":%d`, op.n)
		if !op.expires.IsZero() {
			body += fmt.Sprintf(`,"expiresAt":%q`, refTime(op.expires))
		}
		if op.priority != nil {
			body += fmt.Sprintf(`,"priority":%d`, *op.priority)
		}
		if op.reason != "" {
			reason, _ := json.Marshal(op.reason)
			body += `,"reason":` + string(reason)
		}
		body += "}"
	}
	base := r.bases[r.rng.IntN(2)]
	if op.asUser {
		return base + path, tokenFor(r.t, r.user), body
	}
	return creditsURL(base, path, r.user), r.admin, body
}

// send sends ops at once and returns their answers in order.
func (r *lotsRun) send(ops []refOp) []served {
	for _, op := range ops {
		r.sent[op.kind]++
	}
	if len(ops) == 1 && ops[0].kind == "creditgrant" {
		return []served{r.sendCreditGrant(ops[0])}
	}
	out := make([]served, len(ops))
	var wg sync.WaitGroup
	for i, op := range ops {
		url, token, body := r.request(op)
		wg.Go(func() {
			var hdr http.Header
			var header []string
			if op.key != "" {
				header = []string{"Idempotency-Key", op.key}
			}
			status, got := requestWith(r.t, "POST", url, token, body, &hdr, header...)
			out[i] = served{status, got, hdr.Get("Idempotent-Replayed") == "true"}
		})
	}
	wg.Wait()
	r.requests += len(ops)
	return out
}

// stores the context the edits use.
var lotsCtx = context.Background()
