// Command bench measures the operator the way its users load it and writes
// docs/benchmarks.md and docs/bench-latency.png (make bench). Loopback only; every
// scenario is a fixed number of requests.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/controlplane"
	"github.com/gitread/usercredits-operator/internal/operator"
	"github.com/gitread/usercredits-operator/test/framework"
)

func main() {
	bare := flag.String("bare-server", "", "internal: serve the bare reference handler on this address")
	scale := flag.Int("scale", 100_000, "UserCredits objects for the scale scenario")
	requests := flag.Int("requests", 30_000, "requests per GET scenario")
	out := flag.String("out", "docs", "directory for benchmarks.md and bench-latency.png")
	flag.Parse()
	if *bare != "" {
		if err := serveBare(*bare); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	r, err := run(*scale, *requests)
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
	writeRequests    = 1500
)

func run(scale, requests int) (*results, error) {
	ctx := context.Background()
	r := &results{started: time.Now(), cpus: runtime.NumCPU(), goVersion: runtime.Version(), scale: scale}
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
	cluster, err := framework.StartCluster(operator.NewScheme(), framework.ClusterOptions{Namespaces: []string{"bench", "scale"}})
	if err != nil {
		return nil, err
	}
	defer func() { _ = cluster.Stop() }()
	cfg, c := cluster.Config, cluster.Client
	kubeconfig, err := adminKubeconfig(cluster.Env, work)
	if err != nil {
		return nil, err
	}
	signer, err := auth.NewSigner("bench")
	if err != nil {
		return nil, err
	}

	step("seeding 100 GET users, 300 write users, 1 consume user")
	for _, s := range []struct {
		prefix string
		n      int
		bal    int64
	}{{"get", 100, 5}, {"write", writeUsers, 1}, {"consume", 1, 200}} {
		if _, err := seed(ctx, c, "bench", s.prefix, s.n, 16, s.bal, 0); err != nil {
			return nil, err
		}
	}
	small, smallReady, err := startOperator(bin, kubeconfig, "bench", signer.PublicKeyPEM(), work, "--pprof-bind-address=127.0.0.1:6065")
	if err != nil {
		return nil, err
	}
	defer small.stop()
	r.smallReady = smallReady
	bareProc, err := startBare()
	if err != nil {
		return nil, err
	}
	defer bareProc.stop()

	getTokens, err := tokens(signer, "get", 100)
	if err != nil {
		return nil, err
	}
	client := NewClient(getConcurrency)
	step("GET: warming up both servers")
	Run(ctx, "warm-up", client, 3000, getConcurrency, getRequests(bareProc.addr, getTokens), ok200)
	Run(ctx, "warm-up", client, 3000, getConcurrency, getRequests(small.addr, getTokens), ok200)
	step("GET: bare handler, then the operator (with a CPU profile)")
	r.bareGet = report(Run(ctx, "bare net/http handler GET", client, requests, getConcurrency, getRequests(bareProc.addr, getTokens), ok200))
	profile := startProfile(work, "127.0.0.1:6065", 5)
	r.opGet = report(Run(ctx, "operator GET /api/credits (100 users)", client, requests, getConcurrency, getRequests(small.addr, getTokens), ok200))
	r.profileTop = profile(bin)
	r.smallRSS, _ = small.rssMiB()

	writeTokens, err := tokens(signer, "write", writeUsers)
	if err != nil {
		return nil, err
	}
	step("writes: POST /api/credits, then raw client-go patches, on the same objects")
	wclient := NewClient(writeConcurrency)
	Run(ctx, "warm-up", wclient, 300, writeConcurrency, setRequests(small.addr, writeTokens, 0), ok200)
	r.opSet = report(Run(ctx, "operator POST /api/credits", wclient, writeRequests, writeConcurrency, setRequests(small.addr, writeTokens, 1000), ok200))
	r.rawPatch = report(rawPatches(ctx, c, "bench", "write", writeUsers, writeRequests, writeConcurrency, 100_000))

	step("200 concurrent consumes on one user")
	consumeToken, err := signer.SessionToken(userID("consume", 0), time.Hour)
	if err != nil {
		return nil, err
	}
	r.consume = report(consumeBurst(ctx, small.addr, consumeToken, 200))

	step(fmt.Sprintf("scale: creating %d UserCredits (with status and %d applied grant keys each)", scale, scaleGrantKeys))
	if r.seedTime, err = seed(ctx, c, "scale", "scale", scale, 32, 5, scaleGrantKeys); err != nil {
		return nil, err
	}
	fmt.Printf("  created %d objects in %v\n", scale, r.seedTime.Round(time.Second))
	step("scale: starting an operator on them")
	large, largeReady, err := startOperator(bin, kubeconfig, "scale", signer.PublicKeyPEM(), work)
	if err != nil {
		return nil, err
	}
	defer large.stop()
	r.largeReady = largeReady
	r.largeRSS, _ = large.rssMiB()
	if r.seededKeyReplayed, err = replaysSeededGrant(ctx, cfg, large.addr, "scale", userID("scale", scale/2)); err != nil {
		return nil, err
	}
	spread := make([]string, 2000) // users spread over the whole range
	for i := range spread {
		j := (i * max(1, scale/len(spread))) % scale
		if spread[i], err = signer.SessionToken(userID("scale", j), 2*time.Hour); err != nil {
			return nil, err
		}
	}
	Run(ctx, "warm-up", client, 3000, getConcurrency, getRequests(large.addr, spread), ok200)
	r.largeGet = report(Run(ctx, fmt.Sprintf("operator GET (%d users)", scale), client, requests, getConcurrency, getRequests(large.addr, spread), ok200))
	_, r.largePeak = large.rssMiB()
	return r, nil
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
