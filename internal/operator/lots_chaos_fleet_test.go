package operator_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// chaosReplica is one operator replica of the chaos test's fleet. life ends when it is
// killed: the requests in flight to it are cut off with it, their answers lost.
type chaosReplica struct {
	base   string
	life   context.Context
	cancel context.CancelFunc
	wait   func() error
}

// chaosFleet is two replicas of the chaos test's own (the suite's primary replica is left
// alone: other tests use it), one of which is killed and replaced every period.
type chaosFleet struct {
	t     *testing.T
	mu    sync.Mutex
	live  []*chaosReplica
	kills int
	stop  chan struct{}
	done  chan struct{}
}

func startChaosReplica(t *testing.T) *chaosReplica {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r, err := startReplica(ctx)
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

// shutdown stops the kills and the replicas.
func (f *chaosFleet) shutdown() int {
	close(f.stop)
	<-f.done
	for _, r := range f.live {
		r.cancel()
		if err := r.wait(); err != nil {
			f.t.Errorf("stopping a replica: %v", err)
		}
	}
	return f.kills
}

// chaosClient sends the chaos test's requests; it never fails the test itself: a lost
// answer is an outcome the test retries.
var chaosClient = &http.Client{Timeout: 10 * time.Second}

var errAnswerCut = errors.New("the answer was lost")

// chaosPost sends one POST to replica r, keyed; the error is a lost answer (the replica was
// killed, or refused the connection).
func chaosPost(r *chaosReplica, path, user, token, key, body string) (int, string, bool, error) {
	req, err := http.NewRequestWithContext(r.life, "POST", creditsURL(r.base, path, user), strings.NewReader(body))
	if err != nil {
		return 0, "", false, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := chaosClient.Do(req)
	if err != nil {
		return 0, "", false, errors.Join(errAnswerCut, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", false, errors.Join(errAnswerCut, err)
	}
	return resp.StatusCode, string(data), resp.Header.Get("Idempotent-Replayed") == "true", nil
}
