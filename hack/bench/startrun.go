package main

// The start scenario (issue 22 §2): an operator starts on N objects that have no status yet,
// as `kubectl credits import` leaves them (or a restore, or kubectl apply), and is timed from
// its exec until the controller has written every one of their statuses. While it catches up,
// the API serves other users of the same namespace (a paced GET and POST load, an open loop),
// and the same load is timed again once it has: the controller's writes must not slow them.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/test/framework"
)

const (
	// startGoal is the issue's: 100,000 statuses in ≤ 100 s.
	startGoal = 1000.0
	// startAPIUsers are the users the API serves during the start, settled before it.
	startAPIUsers = 100
	// The API load during and after the catch-up: one GET every getEvery and one POST
	// every setEvery, each sent on time whatever the answers before it (an open loop).
	getEvery, setEvery = 5 * time.Millisecond, 100 * time.Millisecond
	// afterWindow is how long the same load runs once every status is written.
	afterWindow = 8 * time.Second
)

// startOperatorArgs are extra flags for the start scenario's operator (-start-operator-args).
var startOperatorArgs []string

// startRun is one start on fresh objects.
type startRun struct {
	objects              int
	ready, synced        time.Duration // exec → /readyz, → the informer's first list is in
	served               time.Duration // exec → the last status written
	cpu                  map[string]time.Duration
	getDuring, getAfter  Summary
	postDuring, postAter Summary
}

// rate is statuses written a second from the operator's exec.
func (s startRun) rate() float64 { return float64(s.objects) / s.served.Seconds() }

// startFigures are the runs of the start scenario.
type startFigures struct{ runs []startRun }

func (f startFigures) figure(of func(startRun) float64) spread {
	v := make([]float64, len(f.runs))
	for i, r := range f.runs {
		v[i] = of(r)
	}
	return spreadOf(v)
}

func p99ms(s Summary) float64 { return float64(s.P99) / float64(time.Millisecond) }

func (f startFigures) targets() []target {
	if len(f.runs) == 0 {
		return nil
	}
	n := f.runs[0].objects
	rate := f.figure(startRun.rate)
	served := f.figure(func(r startRun) float64 { return r.served.Seconds() })
	getD, getA := f.figure(func(r startRun) float64 { return p99ms(r.getDuring) }), f.figure(func(r startRun) float64 { return p99ms(r.getAfter) })
	postD, postA := f.figure(func(r startRun) float64 { return p99ms(r.postDuring) }), f.figure(func(r startRun) float64 { return p99ms(r.postAter) })
	errs := 0
	for _, r := range f.runs {
		errs += errorsIn([]Summary{r.getDuring, r.getAfter, r.postDuring, r.postAter})
	}
	return []target{
		{fmt.Sprintf("statuses written a second at start on %d objects without status (exec → last status)", n), fmt.Sprintf("≥ %.0f/s", startGoal),
			fmt.Sprintf("%.0f/s (runs %.0f–%.0f; %.1f s)", rate.median, rate.min, rate.max, served.median), rate.median >= startGoal},
		{"GET p99 of other users while the controller catches up vs after", "≤ 3 ms",
			fmt.Sprintf("%.2f ms vs %.2f ms (runs %.2f–%.2f)", getD.median, getA.median, getD.min, getD.max), getD.median <= 3},
		{"POST p99 of other users while the controller catches up vs after", "≤ 2 × after",
			fmt.Sprintf("%.2f ms vs %.2f ms (runs %.2f–%.2f)", postD.median, postA.median, postD.min, postD.max), postD.median <= 2*postA.median},
		{"errors in the API load during and after the catch-up", "0", fmt.Sprint(errs), errs == 0},
	}
}

// runStart runs the start scenario rounds times, each in a namespace of its own.
func runStart(ctx context.Context, cluster *framework.Cluster, bin, kubeconfig, work string, signer *auth.Signer, n, rounds int) (startFigures, error) {
	var f startFigures
	for i := range rounds {
		ns := fmt.Sprintf("start-%d", i+1)
		step(fmt.Sprintf("start: an operator on %d objects without status (round %d of %d)", n, i+1, rounds))
		run, err := startOnce(ctx, cluster, bin, kubeconfig, filepath.Join(work, ns), ns, signer, n)
		if err != nil {
			return f, err
		}
		fmt.Printf("  Ready %v, synced %v, every status %v after exec: %.0f statuses/s; CPU %s\n", run.ready.Round(10*time.Millisecond),
			run.synced.Round(10*time.Millisecond), run.served.Round(10*time.Millisecond), run.rate(), cpuText(run.cpu, n))
		for _, s := range []Summary{run.getDuring, run.getAfter, run.postDuring, run.postAter} {
			fmt.Println("  " + s.String())
		}
		f.runs = append(f.runs, run)
	}
	return f, nil
}

func startOnce(ctx context.Context, cluster *framework.Cluster, bin, kubeconfig, work, ns string, signer *auth.Signer, n int) (startRun, error) {
	run := startRun{objects: n}
	c := cluster.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return run, err
	}
	if err := framework.WarmUp(ctx, c, ns); err != nil {
		return run, err
	}
	if _, err := seed(ctx, c, ns, "api", startAPIUsers, 16, seeding{balance: 1_000_000}); err != nil {
		return run, err
	}
	took, err := seedUnjudged(ctx, cluster, ns, n, startAPIUsers)
	if err != nil {
		return run, err
	}
	fmt.Printf("  created %d objects without status in %v\n", n, took.Round(time.Second))
	cw, err := client.NewWithWatch(cluster.Config, client.Options{Scheme: c.Scheme()})
	if err != nil {
		return run, err
	}
	watchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	servedCh := make(chan error, 1)
	if err := watchServed(watchCtx, cw, ns, n+startAPIUsers, servedCh); err != nil {
		return run, err
	}
	procs := controlPlanePIDs(cluster)
	op, ready, err := startOperator(bin, kubeconfig, ns, signer.PublicKeyPEM(), work, startOperatorArgs...)
	if err != nil {
		return run, err
	}
	defer op.stop()
	run.ready = ready
	procs["operator"] = op.Cmd.Process.Pid
	toks, err := tokens(signer, "api", startAPIUsers)
	if err != nil {
		return run, err
	}
	// The API load runs from Ready; the controller starts its writes once the first list
	// is in, and the figures "during" are the requests sent between then and the last status.
	load := startAPILoad(op.addr, toks)
	if err := op.waitLog("informer cache synced", 5*time.Minute); err != nil {
		load.stop()
		return run, err
	}
	run.synced = time.Since(op.Started)
	syncedAt, cpu0 := time.Now(), cpuTimes(procs)
	select {
	case err := <-servedCh:
		if err != nil {
			load.stop()
			return run, err
		}
	case <-time.After(10 * time.Minute):
		load.stop()
		return run, fmt.Errorf("the statuses of %d objects were not all written within 10 minutes", n)
	}
	servedAt := time.Now()
	run.served, run.cpu = servedAt.Sub(op.Started), diffCPU(cpuTimes(procs), cpu0)
	time.Sleep(time.Second) // the last status's watch event and the no-op judgement it brings
	afterFrom := time.Now()
	time.Sleep(afterWindow)
	load.stop()
	run.getDuring, run.postDuring = load.window("GET, other users, during catch-up", "POST, other users, during catch-up", syncedAt, servedAt)
	run.getAfter, run.postAter = load.window("GET, other users, after catch-up", "POST, other users, after catch-up", afterFrom, time.Now())
	return run, nil
}

// timed is one request of the API load: when it was sent, how long it took, its status.
type timed struct {
	sent    time.Time
	took    time.Duration
	status  int
	isWrite bool
}

// apiLoad is the paced API load of the start scenario.
type apiLoad struct {
	mu    sync.Mutex
	done  []timed
	quit  chan struct{}
	wg    sync.WaitGroup
	tasks sync.WaitGroup
}

// startAPILoad sends GETs and POSTs (a new balance each time) of the users of toks to addr,
// paced, until stop.
func startAPILoad(addr string, toks []string) *apiLoad {
	l := &apiLoad{quit: make(chan struct{})}
	hc := NewClient(64)
	pace := func(every time.Duration, write bool) {
		defer l.wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-l.quit:
				return
			case <-tick.C:
			}
			tok := toks[i%len(toks)]
			l.tasks.Go(func() {
				t0 := time.Now()
				var status int
				if write {
					status, _ = post(context.Background(), hc, "http://"+addr+"/api/credits", tok, fmt.Sprintf(`{"credits":%d}`, 1000+i))
				} else {
					status = getWith(hc, "http://"+addr+"/api/credits", tok)
				}
				l.mu.Lock()
				l.done = append(l.done, timed{sent: t0, took: time.Since(t0), status: status, isWrite: write})
				l.mu.Unlock()
			})
		}
	}
	l.wg.Add(2)
	go pace(getEvery, false)
	go pace(setEvery, true)
	return l
}

func (l *apiLoad) stop() {
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
	l.wg.Wait()
	l.tasks.Wait()
}

// window summarizes the GETs and POSTs sent in [from, to).
func (l *apiLoad) window(getName, postName string, from, to time.Time) (Summary, Summary) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var lat [2][]time.Duration
	var st [2][]int
	for _, t := range l.done {
		if t.sent.Before(from) || !t.sent.Before(to) {
			continue
		}
		k := map[bool]int{false: 0, true: 1}[t.isWrite]
		lat[k], st[k] = append(lat[k], t.took), append(st[k], t.status)
	}
	wall := to.Sub(from)
	return Summarize(getName, lat[0], st[0], wall, ok200), Summarize(postName, lat[1], st[1], wall, ok200)
}

func getWith(hc *http.Client, url, token string) int {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return -1
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	_, _ = resp.Body.Read(make([]byte, 512))
	return resp.StatusCode
}

// section is the start scenario's part of benchmarks.md.
func (f startFigures) section() string {
	if len(f.runs) == 0 {
		return ""
	}
	var b strings.Builder
	n := f.runs[0].objects
	fmt.Fprintf(&b, "\n## Start on objects without status\n\nAn operator starts on %d objects as `kubectl credits import` leaves them (no status), "+
		"beside %d settled users the API serves while it catches up: a GET every %v and a POST every %v, sent on time whatever "+
		"the answers before them, timed from the first list's end to the last status (during) and for %v once every status is written (after). "+
		"CPU is each process's user+system time from the first list's end to the last status, per status.\n\n", n, startAPIUsers, getEvery, setEvery, afterWindow)
	b.WriteString(row("run", "Ready", "first list in", "last status", "statuses/s", "CPU per status", "GET p99 during / after", "POST p99 during / after") +
		row("---", "---", "---", "---", "---", "---", "---", "---"))
	for i, r := range f.runs {
		b.WriteString(row(fmt.Sprint(i+1), r.ready.Round(10*time.Millisecond).String(), r.synced.Round(10*time.Millisecond).String(),
			r.served.Round(10*time.Millisecond).String(), fmt.Sprintf("%.0f", r.rate()), cpuText(r.cpu, n),
			fmt.Sprintf("%s / %s", ms(r.getDuring.P99), ms(r.getAfter.P99)), fmt.Sprintf("%s / %s", ms(r.postDuring.P99), ms(r.postAter.P99))))
	}
	return b.String()
}

// controlPlanePIDs finds cluster's kube-apiserver and etcd among the machine's processes: the
// ones whose command line names its etcd's client address.
func controlPlanePIDs(cluster *framework.Cluster) map[string]int {
	pids := map[string]int{}
	etcd := cluster.Env.ControlPlane.Etcd
	if etcd == nil || etcd.URL == nil {
		return pids
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil || !strings.Contains(string(data), etcd.URL.Host) {
			continue
		}
		args := strings.Split(string(data), "\x00")
		pid, _ := strconv.Atoi(filepath.Base(dir))
		switch filepath.Base(args[0]) {
		case "kube-apiserver":
			pids["kube-apiserver"] = pid
		case "etcd":
			pids["etcd"] = pid
		}
	}
	return pids
}

// cpuTimes reads each process's user+system CPU time so far (/proc/<pid>/stat).
func cpuTimes(pids map[string]int) map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The fields after the command (which may hold spaces) start after its ')'.
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		out[name] = time.Duration(utime+stime) * time.Second / clockTicks
	}
	return out
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times (100 on Linux).
const clockTicks = 100

func diffCPU(now, then map[string]time.Duration) map[string]time.Duration {
	out := map[string]time.Duration{}
	for k, v := range now {
		out[k] = v - then[k]
	}
	return out
}

// cpuText is each process's CPU time per status, in a fixed order.
func cpuText(cpu map[string]time.Duration, n int) string {
	var parts []string
	for _, name := range []string{"operator", "kube-apiserver", "etcd"} {
		if d, ok := cpu[name]; ok {
			parts = append(parts, fmt.Sprintf("%s %.2f ms", name, float64(d.Microseconds())/1000/float64(n)))
		}
	}
	return strings.Join(parts, ", ")
}

// runStartOnly runs the start scenario rounds times on a cluster of its own and prints its
// targets (make bench BENCH_ARGS="-start-only -start-objects=100000 -rounds=1"): docs/ untouched.
// managerBin, when set, is the manager binary to start instead of this tree's (another
// version's, to compare).
func runStartOnly(n, rounds int, managerBin string) int {
	var f startFigures
	err := soloRun("usercredits-bench-start-", managerBin, nil, func(e soloEnv) (err error) {
		f, err = runStart(context.Background(), e.cluster, e.bin, e.kubeconfig, e.work, e.signer, n, rounds)
		return err
	})
	return exitCode(err, f.targets)
}
