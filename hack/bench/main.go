// Command bench measures the operator the way its users load it and writes
// docs/benchmarks.md and docs/bench-latency.png (make bench). Loopback only; every
// scenario is a fixed number of requests. References and the operator are run in turn,
// several times each, and compared by their medians, with the spread beside them.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/controlplane"
	"github.com/gitread/usercredits-operator/internal/operator"
	"github.com/gitread/usercredits-operator/test/framework"
)

func main() {
	bare := flag.String("bare-server", "", "internal: serve the bare reference handler on this address")
	canned := flag.String("canned-server", "", "internal: serve a canned answer on this address (the load generator's ceiling)")
	scale := flag.Int("scale", 100_000, "UserCredits objects for the scale scenario")
	requests := flag.Int("requests", 30_000, "requests per GET run")
	rounds := flag.Int("rounds", 3, "runs of each reference and operator scenario, interleaved")
	out := flag.String("out", "docs", "directory for benchmarks.md and bench-latency.png")
	importRows := flag.Int("import-rows", 100_000, "rows of the import scenario (kubectl credits import); 0 leaves it out")
	importOnly := flag.Bool("import-only", false, "run the import scenario alone and print its figures (docs/ is not written)")
	startObjects := flag.Int("start-objects", 20_000, "objects without status the start scenario's operator starts on; 0 leaves it out")
	flag.Func("start-operator-args", "extra flags (space-separated) for the start scenario's operator, to compare settings", func(v string) error {
		startOperatorArgs = strings.Fields(v)
		return nil
	})
	managerBin := flag.String("manager-bin", "", "with -start-only: start this manager binary instead of building this tree's (to compare versions)")
	startOnly := flag.Bool("start-only", false, "run the start scenario alone (-rounds times) and print its figures (docs/ is not written)")
	lotsOnly := flag.Bool("lots-only", false, "run consumes on users with and without lots alone, -rounds times, with CPU profiles (docs/ is not written)")
	scaleOnly := flag.Bool("scale-only", false, "run the scale scenario alone (and the 100-user GET it is compared with) and print its figures (docs/ is not written)")
	scaleDoc := flag.String("scale-doc", "", "with -scale-only: also write its figures to this directory's benchmarks-<scale>.md (make bench SCALE=…)")
	scaleBins := flag.String("scale-bins", "", "with -scale-only: comma-separated manager binaries whose scale runs alternate round by round (default: this tree's, built)")
	flag.Parse()
	serve := map[string]func(string) error{*bare: serveBare, *canned: serveCanned}
	for addr, f := range serve {
		if addr != "" {
			if err := f(addr); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			return
		}
	}
	// The bench process's own cluster clients log only what goes wrong (envtest, client-go
	// warnings); the operators under test log to their own files.
	ctrl.SetLogger(zap.New(zap.Level(zapcore.ErrorLevel)))
	if *importOnly {
		os.Exit(runImportOnly(*importRows))
	}
	if *startOnly {
		os.Exit(runStartOnly(*startObjects, *rounds, *managerBin))
	}
	if *lotsOnly {
		os.Exit(runLotsOnly(*rounds))
	}
	if *scaleOnly {
		os.Exit(runScaleOnly(*scale, *requests, *rounds, *scaleBins, *scaleDoc))
	}
	r, err := run(*scale, *requests, *rounds, *importRows, *startObjects)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if err := r.write(*out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if !r.allTargetsMet() {
		fmt.Fprintln(os.Stderr, "bench: some targets were missed (see the table above)")
		os.Exit(1)
	}
}

const (
	// scaleGrantKeys is how many applied grant keys each of the scale run's users holds.
	scaleGrantKeys   = 5
	getConcurrency   = 4
	writeConcurrency = 8
	writeUsers       = 300
	writeRequests    = 1200
	holdRoundTripsN  = 400
	hotConsumes      = 200
	lotsPerUser      = 20
)

func run(scale, requests, rounds, importRows, startObjects int) (*results, error) {
	ctx := context.Background()
	r := &results{started: time.Now(), cpus: runtime.NumCPU(), goVersion: runtime.Version(), scale: scale, rounds: rounds}
	work, err := os.MkdirTemp("", "usercredits-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	step("building the manager binary")
	bin, err := framework.BuildManager(work)
	if err != nil {
		return nil, err
	}
	step("starting kube-apiserver and etcd")
	cluster, err := framework.StartCluster(operator.NewScheme(), framework.ClusterOptions{Namespaces: []string{"bench", "scale", importNamespace}, EtcdQuotaBytes: benchEtcdQuota})
	if err != nil {
		return nil, err
	}
	defer func() { _ = cluster.Stop() }()
	c := cluster.Client
	kubeconfig, err := adminKubeconfig(cluster.Env, work)
	if err != nil {
		return nil, err
	}
	signer, err := auth.NewSigner("bench")
	if err != nil {
		return nil, err
	}

	step(fmt.Sprintf("seeding 100 GET users, %d write users, a hot user", writeUsers))
	for _, s := range []struct {
		prefix string
		n      int
		bal    int64
		lots   int
	}{{"get", 100, 5, 0}, {"write", writeUsers, 1_000_000, 0}, {"lots", writeUsers, 1_000_000, lotsPerUser}, {"hot", 2, 0, 0}} {
		if _, err := seed(ctx, c, "bench", s.prefix, s.n, 16, seeding{balance: s.bal, lots: s.lots}); err != nil {
			return nil, err
		}
	}
	small, smallReady, err := startOperator(bin, kubeconfig, "bench", signer.PublicKeyPEM(), work, "--pprof-bind-address=127.0.0.1:6065")
	if err != nil {
		return nil, err
	}
	defer small.stop()
	r.smallReady = smallReady
	bareProc, err := startServer("-bare-server")
	if err != nil {
		return nil, err
	}
	defer bareProc.stop()
	cannedProc, err := startServer("-canned-server")
	if err != nil {
		return nil, err
	}
	defer cannedProc.stop()

	getTokens, err := tokens(signer, "get", 100)
	if err != nil {
		return nil, err
	}
	gets := getRequests(getTokens)
	step("GET: warm-up, then the load generator's ceiling, the bare handler and the operator in turn")
	leanRun("warm-up", bareProc.addr, gets, 3000, getConcurrency, ok200)
	leanRun("warm-up", small.addr, gets, 3000, getConcurrency, ok200)
	for range rounds {
		r.ceiling = append(r.ceiling, report(leanRun("load generator vs canned answer", cannedProc.addr, gets, requests, getConcurrency, ok200)))
		r.bareGet = append(r.bareGet, report(leanRun("bare net/http handler GET", bareProc.addr, gets, requests, getConcurrency, ok200)))
		r.opGet = append(r.opGet, report(leanRun("operator GET /api/credits (100 users)", small.addr, gets, requests, getConcurrency, ok200)))
	}
	// Profiling slows the process it samples, so the profiled run is an extra one, not
	// counted in the figures compared with the bare handler.
	profile := startProfile(work, "127.0.0.1:6065", 2)
	leanRun("operator GET, profiled (not counted)", small.addr, gets, requests, getConcurrency, ok200)
	r.profileTop = profile(bin)
	r.smallRSS, _ = small.rssMiB()

	writeTokens, err := tokens(signer, "write", writeUsers)
	if err != nil {
		return nil, err
	}
	step("writes: the operator's POST /api/credits and raw client-go patches of the same objects, in turn")
	leanRun("warm-up", small.addr, setRequests(writeTokens, 300, 0), 300, writeConcurrency, ok200)
	for i := range rounds {
		offset := (i + 1) * 10_000
		r.opSet = append(r.opSet, report(leanRun("operator POST /api/credits (distinct users)", small.addr, setRequests(writeTokens, writeRequests, offset), writeRequests, writeConcurrency, ok200)))
		r.rawPatch = append(r.rawPatch, report(rawPatches(ctx, c, "bench", "write", writeUsers, writeRequests, writeConcurrency, offset+5_000)))
	}

	lotTokens, err := tokens(signer, "lots", writeUsers)
	if err != nil {
		return nil, err
	}
	step(fmt.Sprintf("holds: reserve + capture round trips, and consumes, on the same users; consumes on users with %d lots", lotsPerUser))
	for range rounds {
		r.holds = append(r.holds, report(holdRoundTrips(ctx, small.addr, writeTokens, holdRoundTripsN, writeConcurrency)))
		r.consumes = append(r.consumes, report(leanRun("consume (distinct users)", small.addr, consumeRequests(writeTokens), holdRoundTripsN, writeConcurrency, ok200)))
		r.lotConsumes = append(r.lotConsumes, report(leanRun(fmt.Sprintf("consume (distinct users with %d lots)", lotsPerUser), small.addr, consumeRequests(lotTokens), holdRoundTripsN, writeConcurrency, ok200)))
	}

	hotToken, err := signer.SessionToken(userID("hot", 0), time.Hour)
	if err != nil {
		return nil, err
	}
	step(fmt.Sprintf("a hot user: %d concurrent consumes on one user (group commit)", hotConsumes))
	for range rounds {
		if err := setBalance(ctx, c, "bench", userID("hot", 0), hotConsumes); err != nil {
			return nil, err
		}
		s := report(consumeBurst("hot user: 200 concurrent consumes, 1 replica", []string{small.addr}, hotToken, hotConsumes))
		r.hot = append(r.hot, s)
		r.hotExact = append(r.hotExact, exactBurst(ctx, c, "bench", userID("hot", 0), s))
	}

	step("two replicas: a second operator on the same objects")
	second, _, err := startOperator(bin, kubeconfig, "bench", signer.PublicKeyPEM(), filepath.Join(work, "second"))
	if err != nil {
		return nil, err
	}
	defer second.stop()
	addrs := []string{small.addr, second.addr}
	for range rounds {
		r.twoGet = append(r.twoGet, report(twoReplicaRun("GET over 2 replicas", addrs, gets, requests, getConcurrency)))
		if err := setBalance(ctx, c, "bench", userID("hot", 0), hotConsumes); err != nil {
			return nil, err
		}
		s := report(consumeBurst("hot user: 200 concurrent consumes, 2 replicas", addrs, hotToken, hotConsumes))
		r.twoHot = append(r.twoHot, s)
		r.hotExact = append(r.hotExact, exactBurst(ctx, c, "bench", userID("hot", 0), s))
	}
	second.stop()

	if importRows > 0 {
		if r.imports, err = runImport(ctx, cluster, bin, kubeconfig, work, signer, importRows); err != nil {
			return nil, err
		}
	}
	if startObjects > 0 {
		if r.starts, err = runStart(ctx, cluster, bin, kubeconfig, work, signer, startObjects, rounds); err != nil {
			return nil, err
		}
	}
	if err := runScale(ctx, r, cluster, bin, kubeconfig, work, signer, scale, requests, small.addr, gets); err != nil {
		return nil, err
	}
	return r, nil
}

// runScale creates scale UserCredits holding 5 grant keys and a full history each, then,
// rounds times, starts an operator on them and measures its start, its reads from the
// first request after /readyz while its informer lists every object, and, once the list
// is in, its memory and reads again. The reads after the sync are compared with the small
// operator's (at smallAddr, for smallGets) run in turn with them, so that both figures are
// taken with the apiserver and etcd holding the scale objects. Each round is a restart, so
// the figures of a replica's warm-up are medians over rounds like every other.
func runScale(ctx context.Context, r *results, cluster *framework.Cluster, bin, kubeconfig, work string, signer *auth.Signer, scale, requests int, smallAddr string, smallGets [][]byte) error {
	var gets [][]byte
	var err error
	if r.seedTime, r.etcdBytes, gets, err = seedScale(ctx, cluster, signer, scale); err != nil {
		return err
	}
	for round := range r.rounds {
		step(fmt.Sprintf("scale: starting an operator on them (round %d of %d): GETs from /readyz while it lists, then after the sync", round+1, r.rounds))
		if err := scaleRound(ctx, r, cluster, bin, kubeconfig, work, signer, scale, requests, smallAddr, smallGets, gets, round == 0, round == 0); err != nil {
			return err
		}
	}
	return nil
}

// syncedLog is what the operator logs once its informer's first list is in.
const syncedLog = "informer cache synced"

// scaleRound is one start of an operator on the scale objects (runScale); first also
// takes its memory, check checks the seeded grant keys and histories through it (once per
// cluster: the check binds a role).
func scaleRound(ctx context.Context, r *results, cluster *framework.Cluster, bin, kubeconfig, work string, signer *auth.Signer, scale, requests int,
	smallAddr string, smallGets, gets [][]byte, first, check bool) error {
	group := creditsv1alpha1.GroupVersion.Group
	listed0, lists0, err := framework.WatchListTime(ctx, cluster.Config, group, usercreditsResource)
	if err != nil {
		return err
	}
	large, ready, err := startOperator(bin, kubeconfig, "scale", signer.PublicKeyPEM(), work)
	if err != nil {
		return err
	}
	defer large.stop()
	r.largeReady = append(r.largeReady, ready)
	r.listingGet = append(r.listingGet, report(getsWhileListing(large, fmt.Sprintf("operator GET (%d users) from /readyz, listing", scale), gets, requests)))
	// Memory and the reads after the sync are measured once the list is in (the operator
	// logs it), and the controller's start has settled.
	if err := large.waitLog(syncedLog, 5*time.Minute+time.Duration(scale)*time.Millisecond); err != nil {
		return err
	}
	r.largeSynced = append(r.largeSynced, time.Since(large.Started))
	listed, lists, err := framework.WatchListTime(ctx, cluster.Config, group, usercreditsResource)
	if err != nil {
		return err
	}
	if lists > lists0 {
		r.listTime = append(r.listTime, listed-listed0)
	}
	fmt.Printf("  informer cache synced %v after start (the apiserver's watch-lists of the start, %d: %.1f s)\n",
		r.largeSynced[len(r.largeSynced)-1].Round(10*time.Millisecond), lists-lists0, listed-listed0)
	time.Sleep(3 * time.Second)
	if first {
		r.largeRSS, _ = large.rssMiB()
		r.controlPlaneMem = controlPlaneMemText(cluster)
	}
	if check {
		if r.seededKeyReplayed, err = replaysSeededGrant(ctx, cluster.Config, large.addr, "scale", userID("scale", scale/2)); err != nil {
			return err
		}
		tok, err := signer.SessionToken(userID("scale", scale/3), time.Hour)
		if err != nil {
			return err
		}
		if r.historyRead, err = readsFullHistory(large.addr, tok); err != nil {
			return err
		}
	}
	leanRun("warm-up", large.addr, gets, 3000, getConcurrency, ok200)
	r.smallBesideLarge = append(r.smallBesideLarge, report(leanRun("operator GET (100 users), in turn with the scale run", smallAddr, smallGets, requests, getConcurrency, ok200)))
	procs := controlPlanePIDs(cluster)
	procs["operator"] = large.Cmd.Process.Pid
	cpu0 := cpuTimes(procs)
	s := report(leanRun(fmt.Sprintf("operator GET (%d users) after the sync", scale), large.addr, gets, requests, getConcurrency, ok200))
	r.largeGet = append(r.largeGet, s)
	if first {
		r.afterSyncCPU = cpuShares(diffCPU(cpuTimes(procs), cpu0), s.Duration)
	}
	_, peak := large.rssMiB()
	r.largePeak = max(r.largePeak, peak)
	return nil
}

// getsWhileListing sends GETs to s from now (right after its /readyz answered) until n are
// answered or s logs that its informer has listed every object, whichever comes first: the
// reads a restarted replica serves while it warms up. Requests sent before that log count.
func getsWhileListing(s *server, name string, reqs [][]byte, n int) Summary {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil && !strings.Contains(s.Logs(), syncedLog) {
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
	}()
	return leanRunCtx(ctx, name, s.addr, reqs, n, getConcurrency, ok200)
}

func step(msg string) { fmt.Printf("== %s\n", msg) }

func report(s Summary) Summary {
	fmt.Println("  " + s.String())
	return s
}

func adminKubeconfig(env *envtest.Environment, dir string) (string, error) {
	path := filepath.Join(dir, "admin.kubeconfig")
	return path, controlplane.WriteAdminKubeconfig(env, "bench-admin", path)
}
