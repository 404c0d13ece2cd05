package operator_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// chaosKeyed is one keyed request (a grant, a consume, a void) and every answer it had.
type chaosKeyed struct {
	kind, user, key string
	credits         int64
	expires         time.Time // zero: never
	priority        int32     // 0: unset (the default, 50)
	reason          string
	lot             string // a void's lot
	mu              sync.Mutex
	applied         int      // 200 answers that were not replays: at most one
	bodies          []string // every 200 answer: all the same
}

// path and body are the request as HTTP.
func (c *chaosKeyed) path() string {
	switch c.kind {
	case "consume":
		return "/api/credits/consume"
	case "void":
		return "/api/credits/grants/" + c.lot + "/void"
	}
	return "/api/credits/grant"
}

func (c *chaosKeyed) body() string {
	switch c.kind {
	case "consume":
		return fmt.Sprintf(`{"credits":%d}`, c.credits)
	case "void":
		return ""
	}
	body := fmt.Sprintf(`{"credits":%d`, c.credits)
	if !c.expires.IsZero() {
		body += fmt.Sprintf(`,"expiresAt":%q`, refTime(c.expires))
	}
	if c.priority != 0 {
		body += fmt.Sprintf(`,"priority":%d`, c.priority)
	}
	if c.reason != "" {
		reason, _ := json.Marshal(c.reason)
		body += `,"reason":` + string(reason)
	}
	return body + "}"
}

// chaosCreditGrant is one CreditGrant of the run.
type chaosCreditGrant struct {
	name, user string
	credits    int64
	expires    time.Time // zero: never
	priority   int32
}

// What is done to a CreditGrant: created; applied again unchanged (a GitOps re-sync);
// pruned and created again under its name; its status lost (the state an operator killed
// between the user's write and the status write leaves).
const (
	cgCreate     = "create"
	cgResync     = "re-sync"
	cgRecreate   = "prune and re-create"
	cgLoseStatus = "lose its status"
)

// chaosTask is one send: of a keyed request (copies of it at once), or one thing done to a
// CreditGrant.
type chaosTask struct {
	req      *chaosKeyed
	copies   int
	cg       *chaosCreditGrant
	cgAction string
}

func (task chaosTask) send(t *testing.T, fleet *chaosFleet, admin string, tally *chaosTally) {
	if task.cg != nil {
		task.cg.do(t, task.cgAction)
		return
	}
	chaosSend(t, fleet, admin, task.req, task.copies, tally)
}

// chaosPlan is every request of a run, in three waves, and what the books must say.
type chaosPlan struct {
	users                   []string
	grants, consumes, voids []*chaosKeyed
	toVoid                  map[string]*chaosKeyed // by user: the grant whose lot is voided at the end
	creditGrants            []*chaosCreditGrant
	first, later, last      []chaosTask
	lastExpiry              time.Time
}

// planChaos plans, for each user: a base grant (more than all the consumes), two grants
// that expire during the run (priority 100: spent last, so they expire whole), three other
// grants (one to be voided: younger than the base, so never spent from), a CreditGrant
// (every fifth one expiring, created first; the others of priority 90, spent after the
// base, so that their lots stay whole to be found), and the consumes, of 1 each.
func planChaos(rng *rand.Rand, size chaosSize, prefix, cgPrefix string, began time.Time) *chaosPlan {
	p := &chaosPlan{toVoid: map[string]*chaosKeyed{}}
	var early, base []chaosTask // the first wave: the expiring grants and the CreditGrants first
	expiry := func(from time.Duration) time.Time {
		at := began.Add(from + time.Duration(rng.Int64N(int64(size.spread)))).Truncate(time.Second)
		if at.After(p.lastExpiry) {
			p.lastExpiry = at
		}
		return at
	}
	grant := func(g *chaosKeyed, wave *[]chaosTask) {
		g.kind = "grant"
		p.grants = append(p.grants, g)
		*wave = append(*wave, chaosTask{req: g, copies: 2})     // sent twice at once,
		p.later = append(p.later, chaosTask{req: g, copies: 1}) // again later,
		p.last = append(p.last, chaosTask{req: g, copies: 1})   // and at the end
	}
	for u := range size.users {
		user := fmt.Sprintf("%s%03d", prefix, u)
		p.users = append(p.users, user)
		grant(&chaosKeyed{user: user, key: user + "-base", credits: int64(size.consumes + 50)}, &base)
		for i := range 2 {
			grant(&chaosKeyed{user: user, key: fmt.Sprintf("%s-expiring-%d", user, i), credits: int64(5 + rng.IntN(6)), expires: expiry(size.expiry),
				priority: 100, reason: fmt.Sprintf("expires during the chaos (%d)", i)}, &early)
		}
		for i := range 3 {
			g := &chaosKeyed{user: user, key: fmt.Sprintf("%s-grant-%d", user, i), credits: int64(1 + rng.IntN(10))}
			if i == 0 {
				g.reason, p.toVoid[user] = chaosVoidReason, g
			}
			grant(g, &p.later)
		}
		cg := &chaosCreditGrant{name: fmt.Sprintf("%s-%03d", cgPrefix, u), user: user, credits: int64(3 + rng.IntN(8)), priority: 90}
		p.creditGrants = append(p.creditGrants, cg)
		if u%5 == 0 {
			cg.expires, cg.priority = expiry(size.cgExpiry), 100
			early = append([]chaosTask{{cg: cg, cgAction: cgCreate}}, early...)
		} else {
			early = append(early, chaosTask{cg: cg, cgAction: cgCreate})
		}
		p.later = append(p.later, chaosTask{cg: cg, cgAction: cgResync}, chaosTask{cg: cg, cgAction: cgRecreate})
		p.last = append(p.last, chaosTask{cg: cg, cgAction: cgLoseStatus})
		for i := range size.consumes {
			c := &chaosKeyed{kind: "consume", user: user, key: fmt.Sprintf("%s-consume-%d", user, i), credits: 1}
			p.consumes = append(p.consumes, c)
			p.later = append(p.later, chaosTask{req: c, copies: 1})
		}
	}
	p.first = append(early, base...)
	rng.Shuffle(len(p.later), func(i, j int) { p.later[i], p.later[j] = p.later[j], p.later[i] })
	rng.Shuffle(len(p.last), func(i, j int) { p.last[i], p.last[j] = p.last[j], p.last[i] })
	// Each user's last consumes are sent again at the end (within the request-key ledger's
	// last 100 of the user's).
	replays := map[string]int{}
	for i := len(p.later) - 1; i >= 0; i-- {
		if task := p.later[i]; task.req != nil && task.req.kind == "consume" && replays[task.req.user] < 20 {
			replays[task.req.user]++
			p.last = append(p.last, task)
		}
	}
	return p
}

// chaosVoids finds each user's lot to void (a GET /api/credits/grants) and plans its void,
// sent three times at once.
func chaosVoids(t *testing.T, fleet *chaosFleet, admin string, p *chaosPlan) []chaosTask {
	var tasks []chaosTask
	for _, user := range p.users {
		g := p.toVoid[user]
		lot := ""
		for _, l := range chaosGrants(t, fleet, admin, user) {
			if l.Reason == chaosVoidReason {
				lot = l.ID
			}
		}
		if lot == "" {
			t.Errorf("%s: no lot of the grant %s (reason %q) to void", user, g.key, chaosVoidReason)
			continue
		}
		v := &chaosKeyed{kind: "void", user: user, key: user + "-void", lot: lot, credits: g.credits}
		p.voids = append(p.voids, v)
		tasks = append(tasks, chaosTask{req: v, copies: 3})
	}
	return tasks
}
