package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/internal/operator"
	"github.com/gitread/usercredits-operator/test/framework"
)

// runScaleOnly runs the scale scenario alone (-scale-only): the 100-user GET operator it is
// compared with, the scale objects, and rounds restarts of an operator on them. With
// several binaries (-scale-bins), each round starts each of them in turn on the same
// objects, so that two builds are compared under the same load; each gets its own figures.
// With docDir (-scale-doc), the figures of this tree's build are also written to
// docDir/scaleDocName(scale), even when a target is missed.
func runScaleOnly(scale, requests, rounds int, bins, docDir string) int {
	if docDir != "" && bins != "" {
		fmt.Fprintln(os.Stderr, "bench: -scale-doc reports this tree's build: it does not go with -scale-bins")
		return 1
	}
	work, err := os.MkdirTemp("", "usercredits-bench-scale-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer os.RemoveAll(work)
	names, all, err := scaleOnly(work, scale, requests, rounds, bins)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if docDir != "" {
		if err := all[names[0]].writeScaleDoc(docDir); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
	}
	met := true
	for _, bin := range names {
		r := all[bin]
		fmt.Printf("\n%s\n", bin)
		for _, t := range r.scaleTargets() {
			fmt.Printf("  %-100s %-18s %s  %s\n", t.what, t.goal, t.measured, mark(t.met))
			met = met && t.met
		}
		for _, f := range r.scaleFacts() {
			fmt.Printf("  %-100s %s\n", f[0], f[1])
		}
	}
	if !met {
		return 1
	}
	return 0
}

// scaleOnly runs the scale scenario for each of bins (this tree's build when empty) and
// returns the binaries in order and their figures.
func scaleOnly(work string, scale, requests, rounds int, bins string) ([]string, map[string]*results, error) {
	ctx, started := context.Background(), time.Now()
	step("building the manager binary, starting kube-apiserver and etcd")
	built, err := framework.BuildManager(work)
	if err != nil {
		return nil, nil, err
	}
	names := []string{built}
	if bins != "" {
		names = strings.Split(bins, ",")
	}
	if scale > defaultScale {
		// Inherited by kube-apiserver and etcd (controlPlaneMemLimit); the bench itself read
		// its own GOMEMLIMIT at start.
		if err := os.Setenv("GOMEMLIMIT", controlPlaneMemLimit); err != nil {
			return nil, nil, err
		}
		stop := make(chan struct{})
		defer close(stop)
		go guardMemory(stop)
	}
	cluster, err := framework.StartCluster(operator.NewScheme(), framework.ClusterOptions{Namespaces: []string{"bench", "scale"}, EtcdQuotaBytes: benchEtcdQuota})
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = cluster.Stop() }()
	kubeconfig, err := adminKubeconfig(cluster.Env, work)
	if err != nil {
		return nil, nil, err
	}
	signer, err := auth.NewSigner("bench")
	if err != nil {
		return nil, nil, err
	}
	if _, err := seed(ctx, cluster.Client, "bench", "get", 100, 16, seeding{balance: 5}); err != nil {
		return nil, nil, err
	}
	small, _, err := startOperator(built, kubeconfig, "bench", signer.PublicKeyPEM(), work)
	if err != nil {
		return nil, nil, err
	}
	defer small.stop()
	getTokens, err := tokens(signer, "get", 100)
	if err != nil {
		return nil, nil, err
	}
	smallGets := getRequests(getTokens)
	leanRun("warm-up", small.addr, smallGets, 3000, getConcurrency, ok200)
	seedTime, etcdBytes, gets, err := seedScale(ctx, cluster, signer, scale)
	if err != nil {
		return nil, nil, err
	}
	all := map[string]*results{}
	for _, bin := range names {
		all[bin] = &results{started: started, cpus: runtime.NumCPU(), goVersion: runtime.Version(), scale: scale, rounds: rounds, seedTime: seedTime, etcdBytes: etcdBytes}
	}
	for round := range rounds {
		for i, bin := range names {
			step(fmt.Sprintf("scale: %s on them (round %d of %d)", filepath.Base(bin), round+1, rounds))
			if err := scaleRound(ctx, all[bin], cluster, bin, kubeconfig, work, signer, scale, requests, small.addr, smallGets, gets, round == 0, round == 0 && i == 0); err != nil {
				return nil, nil, err
			}
		}
	}
	return names, all, nil
}
