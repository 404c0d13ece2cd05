package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// runLotsOnly measures consumes on users with lotsPerUser lots against consumes on users
// with none, interleaved, alone (the lots target of make bench, reproduced in minutes), and
// profiles the operator and the apiserver during one extra run of each.
func runLotsOnly(rounds int) int {
	ctx := context.Background()
	err := soloRun("usercredits-bench-lots-", "", []string{"bench"}, func(e soloEnv) error {
		cluster, bin, kubeconfig, work, signer := e.cluster, e.bin, e.kubeconfig, e.work, e.signer
		users := holdRoundTripsN * (rounds + 1)
		step(fmt.Sprintf("seeding %d users without lots and %d with %d", users, users, lotsPerUser))
		for _, s := range []struct {
			prefix string
			lots   int
		}{{"write", 0}, {"lots", lotsPerUser}} {
			if _, err := seed(ctx, cluster.Client, "bench", s.prefix, users, 16, seeding{balance: 1_000_000, lots: s.lots}); err != nil {
				return err
			}
		}
		op, _, err := startOperator(bin, kubeconfig, "bench", signer.PublicKeyPEM(), work, "--pprof-bind-address=127.0.0.1:6066")
		if err != nil {
			return err
		}
		defer op.stop()
		plain, err := tokens(signer, "write", users)
		if err != nil {
			return err
		}
		lots, err := tokens(signer, "lots", users)
		if err != nil {
			return err
		}
		var none, many []Summary
		for i := range rounds {
			from, to := i*holdRoundTripsN, (i+1)*holdRoundTripsN
			none = append(none, report(leanRun("consume (distinct users)", op.addr, consumeRequests(plain[from:to]), holdRoundTripsN, writeConcurrency, ok200)))
			many = append(many, report(leanRun(fmt.Sprintf("consume (distinct users with %d lots)", lotsPerUser), op.addr, consumeRequests(lots[from:to]), holdRoundTripsN, writeConcurrency, ok200)))
		}
		ratio := ratios(many, none)
		fmt.Printf("\nconsume with %d lots / without: median %s (min %s, max %s)\n", lotsPerUser, pct(ratio.median), pct(ratio.min), pct(ratio.max))
		last := rounds * holdRoundTripsN
		for _, p := range []struct {
			name string
			toks []string
		}{{"plain", plain[last:]}, {"lots", lots[last:]}} {
			wait := profileBoth(cluster.Config, work, p.name, 4)
			leanRun("profiled (not counted): "+p.name, op.addr, consumeRequests(p.toks), holdRoundTripsN, writeConcurrency, ok200)
			fmt.Print(wait(bin))
		}
		return nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}

// profileBoth takes CPU profiles of the operator and the apiserver over seconds; the
// returned func waits for them and renders their top functions.
func profileBoth(cfg *rest.Config, dir, name string, seconds int) func(bin string) string {
	opDir := filepath.Join(dir, "op-"+name)
	_ = os.MkdirAll(opDir, 0o755)
	opWait := startProfile(opDir, "127.0.0.1:6066", seconds)
	path := filepath.Join(dir, "apiserver-"+name+".pprof")
	done := make(chan error, 1)
	go func() {
		c, err := rest.UnversionedRESTClientFor(withCodec(cfg))
		if err != nil {
			done <- err
			return
		}
		body, err := c.Get().AbsPath("/debug/pprof/profile").Param("seconds", fmt.Sprint(seconds)).Stream(context.Background())
		if err != nil {
			done <- err
			return
		}
		defer body.Close()
		f, err := os.Create(path)
		if err == nil {
			_, err = io.Copy(f, body)
			f.Close()
		}
		done <- err
	}()
	return func(bin string) string {
		out := "\n== operator, " + name + "\n" + opWait(bin)
		if err := <-done; err != nil {
			return out + "apiserver profile failed: " + err.Error() + "\n"
		}
		top, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=45", path).Output()
		if err != nil {
			return out + "pprof failed: " + err.Error() + "\n"
		}
		return out + "\n== apiserver, " + name + "\n" + strings.Join(strings.Split(string(top), "\n")[4:], "\n")
	}
}

func withCodec(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = nil
	c.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	return c
}
