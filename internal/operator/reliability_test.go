package operator_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
	"github.com/gitread/usercredits-operator/test/framework"
)

// outcome is one request of the mixed load.
type outcome struct {
	write          bool // a set or consume; reads are GETs
	seq            int
	status         int
	body           string
	latency        time.Duration
	started, ended time.Time
}

// loadWorker owns one user: a setter sets strictly increasing balances, a consumer spends 1
// per request with a fresh Idempotency-Key; each write is followed by a GET.
type loadWorker struct {
	user     string
	consumer bool
	token    string
	results  []outcome
}

func (w *loadWorker) run(t *testing.T, client *http.Client, stop <-chan struct{}) {
	for seq := 1; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		path, body, key := "/api/credits", fmt.Sprintf(`{"credits":%d}`, seq), ""
		if w.consumer {
			path, body, key = "/api/credits/consume", "", fmt.Sprintf("%s-%d", w.user, seq)
		}
		w.results = append(w.results, w.do(t, client, "POST", path, body, key, seq))
		w.results = append(w.results, w.do(t, client, "GET", "/api/credits", "", "", seq))
		time.Sleep(20 * time.Millisecond)
	}
}

func (w *loadWorker) do(t *testing.T, client *http.Client, method, path, body, key string, seq int) outcome {
	req, _ := http.NewRequest(method, apiBase+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+w.token)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	o := outcome{write: method == "POST", seq: seq, started: time.Now()}
	resp, err := client.Do(req)
	o.ended = time.Now()
	o.latency = o.ended.Sub(o.started)
	if err != nil {
		o.body = err.Error()
		return o
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	o.status, o.body = resp.StatusCode, string(data)
	return o
}

// answerGrace is the credits store's wait past a request's deadline for the write it is
// part of (so the caller learns what happened rather than "unknown"); schedulingSlack
// covers the HTTP round trip on a loaded 2-core machine, measured at ~20 ms.
const (
	answerGrace     = time.Second
	schedulingSlack = 250 * time.Millisecond
)

// TestMixedLoadThroughAnOutage stops the real apiserver under steady mixed load: every
// answer is 200 or the contract's 500 body within the request timeout, nothing panics,
// writes recover within 5 s of the restart, every acknowledged write is stored, and no
// goroutines are left behind.
func TestMixedLoadThroughAnOutage(t *testing.T) {
	httpClient := &http.Client{Timeout: 2 * requestTimeout}
	workers := make([]*loadWorker, 6)
	for i := range workers {
		w := &loadWorker{user: fmt.Sprintf("user_Load%d", i), consumer: i%2 == 1}
		w.token = tokenFor(t, w.user)
		workers[i] = w
		if w.consumer {
			expectCall(t, "seed", "POST", w.token, `{"credits":10000}`, 200, `{"success":true,"credits":10000}`)
		}
	}
	goroutinesBefore := runtime.NumGoroutine()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { w.run(t, httpClient, stop) })
	}
	time.Sleep(time.Second)
	apiserver := env.ControlPlane.GetAPIServer()
	if err := apiserver.Stop(); err != nil {
		t.Logf("apiserver stop: %v (killed)", err)
	}
	time.Sleep(3 * time.Second)
	if err := apiserver.Start(); err != nil {
		t.Fatalf("restarting the apiserver: %v", err)
	}
	restarted := time.Now()
	// A fresh caller measures recovery: the load workers may still sit in requests they
	// sent while the apiserver was starting (bounded by the request timeout).
	probe := &loadWorker{user: "user_LoadProbe"}
	probe.token = tokenFor(t, probe.user)
	var recovered time.Duration
	for seq := 1; time.Since(restarted) < 10*time.Second; seq++ {
		if o := probe.do(t, httpClient, "POST", "/api/credits", fmt.Sprintf(`{"credits":%d}`, seq), "", seq); o.status == 200 {
			recovered = o.ended.Sub(restarted)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if recovered == 0 || recovered > 5*time.Second {
		t.Errorf("writes did not recover within 5s of the apiserver's restart (%v)", recovered)
	}
	t.Logf("a new write succeeded %v after the apiserver was back", recovered.Round(time.Millisecond))
	time.Sleep(6 * time.Second)
	close(stop)
	wg.Wait()

	for _, w := range workers {
		checkOutcomes(t, w)
	}
	for _, w := range workers {
		checkStored(t, w)
	}

	httpClient.CloseIdleConnections()
	framework.Eventually(t, 10*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > goroutinesBefore+25 {
			return fmt.Errorf("%d goroutines after the load, %d before", n, goroutinesBefore)
		}
		return nil
	})
}

// checkOutcomes: only 200 or the contract 500, bounded latency, and the worker's writes
// succeeding again by the end.
func checkOutcomes(t *testing.T, w *loadWorker) {
	t.Helper()
	var failures int
	lastWriteOK := false
	for _, o := range w.results {
		want500 := `{"error":"Error fetching credits"}`
		if o.write {
			want500 = `{"error":"Error updating credits"}`
		}
		switch {
		case o.status == 200:
			if o.write {
				lastWriteOK = true
			}
		case o.status == 500 && o.body == want500:
			failures++
			if o.write {
				lastWriteOK = false
			}
		default:
			t.Errorf("%s: answered %d %q (write=%v)", w.user, o.status, o.body, o.write)
		}
		if bound := requestTimeout + answerGrace + schedulingSlack; o.latency > bound {
			t.Errorf("%s: a request took %v, bound is %v", w.user, o.latency, bound)
		}
	}
	if failures == 0 {
		t.Errorf("%s: no request failed during the outage; the fault was not injected", w.user)
	}
	if !lastWriteOK {
		t.Errorf("%s: its last write still failed after the apiserver came back", w.user)
	}
	t.Logf("%s: %d requests, %d contract 500s", w.user, len(w.results), failures)
}

// checkStored: every acknowledged write is in the apiserver.
func checkStored(t *testing.T, w *loadWorker) {
	t.Helper()
	var lastAcked, attempted, acked int
	for _, o := range w.results {
		if !o.write {
			continue
		}
		attempted = o.seq
		if o.status == 200 {
			lastAcked = o.seq
			acked++
		}
	}
	stored := storedBalanceOf(t, w.user)
	if !w.consumer {
		if stored < int64(lastAcked) || stored > int64(attempted) {
			t.Errorf("%s: stored %d; the last acknowledged set was %d (attempted up to %d)", w.user, stored, lastAcked, attempted)
		}
		return
	}
	if spent := 10000 - stored; spent < int64(acked) || spent > int64(attempted) {
		t.Errorf("%s: %d credits spent; %d consumes acknowledged, %d attempted", w.user, spent, acked, attempted)
	}
	// Retries of recent acknowledged requests (within the ledger's retention) are answered,
	// not applied again.
	client := &http.Client{Timeout: 2 * requestTimeout}
	replayed := 0
	for i := len(w.results) - 1; i >= 0 && replayed < account.RequestKeysMaxEntries/2; i-- {
		o := w.results[i]
		if !o.write || o.status != 200 {
			continue
		}
		replayed++
		if r := w.do(t, client, "POST", "/api/credits/consume", "", fmt.Sprintf("%s-%d", w.user, o.seq), o.seq); r.status != 200 || r.body != o.body {
			t.Fatalf("%s: replaying consume %d: %d %s, originally %s", w.user, o.seq, r.status, r.body, o.body)
		}
	}
	if got := storedBalanceOf(t, w.user); got != stored {
		t.Errorf("%s: replaying recent keys changed the balance from %d to %d", w.user, stored, got)
	}
}

func storedBalanceOf(t *testing.T, user string) int64 {
	t.Helper()
	obj := &creditsv1alpha1.UserCredits{}
	key := client.ObjectKey{Namespace: testNamespace, Name: account.ObjectNameForUser(user)}
	if err := k8sClient.Get(context.Background(), key, obj); err != nil {
		t.Fatalf("reading %s: %v", user, err)
	}
	return obj.Spec.Credits
}
