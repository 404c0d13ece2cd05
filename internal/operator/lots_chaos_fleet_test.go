package operator_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitread/usercredits-operator/internal/operator/options"
)

// chaosReplica is one operator replica of the chaos test's fleet. life ends when it is
// killed: its manager, controllers and API stop, and the requests in flight to it are cut
// off with it, their answers lost.
type chaosReplica struct {
	base   string
	life   context.Context
	cancel context.CancelFunc
	wait   func() error
}

// chaosFleet is the two replicas that watch the chaos namespace, one of which is killed
// and replaced every period.
type chaosFleet struct {
	t        *testing.T
	mu       sync.Mutex
	live     []*chaosReplica
	kills    int
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

func startChaosReplica(t *testing.T) *chaosReplica {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r, err := startReplica(ctx, func(o *options.Options) { o.Namespace = chaosNamespace })
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	return &chaosReplica{base: r.base, life: ctx, cancel: cancel, wait: r.wait}
}

// newChaosFleet starts two replicas and kills one (the older) every period.
func newChaosFleet(t *testing.T, period time.Duration) *chaosFleet {
	f := &chaosFleet{t: t, live: []*chaosReplica{startChaosReplica(t), startChaosReplica(t)}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for {
			select {
			case <-f.stop:
				return
			case <-time.After(period):
			}
			f.killOne()
		}
	}()
	return f
}

// killOne kills the older replica, without warning to the requests it is serving, and
// starts another in its place; meanwhile the other replica serves alone.
func (f *chaosFleet) killOne() {
	f.mu.Lock()
	victim := f.live[0]
	f.live = f.live[1:]
	f.kills++
	f.mu.Unlock()
	victim.cancel()
	if err := victim.wait(); err != nil {
		f.t.Errorf("a killed replica: %v", err)
	}
	next := startChaosReplica(f.t)
	f.mu.Lock()
	f.live = append(f.live, next)
	f.mu.Unlock()
}

// pick is a live replica.
func (f *chaosFleet) pick() *chaosReplica {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live[rand.IntN(len(f.live))]
}

// stopKilling stops the kills; the replicas go on serving. It returns how many were killed.
func (f *chaosFleet) stopKilling() int {
	f.stopOnce.Do(func() { close(f.stop) })
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.kills
}

// shutdown stops the kills and the replicas; a second call does nothing.
func (f *chaosFleet) shutdown() {
	f.stopKilling()
	f.mu.Lock()
	live := f.live
	f.live = nil
	f.mu.Unlock()
	for _, r := range live {
		r.cancel()
		if err := r.wait(); err != nil {
			f.t.Errorf("stopping a replica: %v", err)
		}
	}
}

// chaosClient sends the chaos test's requests; it never fails the test itself: a lost
// answer is an outcome the test retries.
var chaosClient = &http.Client{Timeout: 10 * time.Second}

// chaosCall sends one request to replica r (keyed when key is set); an error is a lost
// answer (the replica was killed, or refused the connection).
func chaosCall(r *chaosReplica, method, path, user, token, key, body string) (int, string, bool, error) {
	req, err := http.NewRequestWithContext(r.life, method, creditsURL(r.base, path, user), strings.NewReader(body))
	if err != nil {
		return 0, "", false, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := chaosClient.Do(req)
	if err != nil {
		return 0, "", false, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", false, err
	}
	return resp.StatusCode, string(data), resp.Header.Get("Idempotent-Replayed") == "true", nil
}

// chaosSend sends copies of c at once, each to a live replica, each again (same key, maybe
// another replica) until it has an answer: a kill or a 500 leaves the first attempt's fate
// unknown, and the key makes the retry safe.
func chaosSend(t *testing.T, fleet *chaosFleet, admin string, c *chaosKeyed, copies int, tally *chaosTally) {
	var wg sync.WaitGroup
	for range copies {
		wg.Go(func() {
			cut := false
			var status int
			var body string
			var err error
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				var replayed bool
				status, body, replayed, err = chaosCall(fleet.pick(), "POST", c.path(), c.user, admin, c.key, c.body())
				switch {
				case err == nil && status == 200:
					c.answered(t, body, replayed)
					if cut {
						tally.interrupted.Add(1)
						if replayed {
							tally.replayedAfterKill.Add(1)
						} else {
							tally.fresh.Add(1)
						}
					}
					return
				case err == nil && status != 500:
					t.Errorf("%s %s: %d %s", c.path(), c.key, status, body)
					return
				}
				cut = true
			}
			t.Errorf("%s %s: no answer within 30 s (last: %d %s %v)", c.path(), c.key, status, body, err)
		})
	}
	wg.Wait()
}

// answered records a 200 answer to c.
func (c *chaosKeyed) answered(t *testing.T, body string, replayed bool) {
	var a struct {
		Credits *int64 `json:"credits"`
	}
	if err := json.Unmarshal([]byte(body), &a); err != nil || a.Credits == nil || *a.Credits < 0 {
		t.Errorf("%s: answer %s", c.key, body)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !replayed {
		c.applied++
	}
	c.bodies = append(c.bodies, body)
}

// chaosGet reads path for user from a live replica, again until it answers 200.
func chaosGet(t *testing.T, fleet *chaosFleet, admin, path, user string, into any) {
	t.Helper()
	var last error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		status, body, _, err := chaosCall(fleet.pick(), "GET", path, user, admin, "", "")
		if err == nil && status == 200 {
			if err := json.Unmarshal([]byte(body), into); err != nil {
				t.Fatalf("GET %s for %s: %s: %v", path, user, body, err)
			}
			return
		}
		last = errors.Join(err, errors.New(body))
	}
	t.Fatalf("GET %s for %s: no answer within 30 s: %v", path, user, last)
}

// chaosGrants is GET /api/credits/grants for user.
func chaosGrants(t *testing.T, fleet *chaosFleet, admin, user string) []refGrantView {
	var g struct {
		Grants []refGrantView `json:"grants"`
	}
	chaosGet(t, fleet, admin, "/api/credits/grants", user, &g)
	return g.Grants
}
