package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// results are the figures of one make bench run; scenarios run rounds times each.
type results struct {
	started   time.Time
	cpus      int
	goVersion string
	scale     int
	rounds    int

	ceiling, bareGet, opGet []Summary
	opSet, rawPatch         []Summary
	holds, consumes         []Summary
	lotConsumes             []Summary // consumes on users whose balance is in lotsPerUser lots
	hot, twoHot, twoGet     []Summary
	hotExact                []bool
	largeGet                []Summary // the scale operator's GETs once its informer has listed
	smallBesideLarge        []Summary // the 100-user GET, run in turn with largeGet
	listingGet              []Summary // the scale operator's GETs from /readyz until it has listed

	smallReady, seedTime           time.Duration
	etcdBytes                      int64           // etcd's database size once the scale objects are in
	listTime                       []float64       // seconds the apiserver spent sending each scale start its initial lists
	controlPlaneMem                string          // kube-apiserver's and etcd's memory after the first scale start's sync
	afterSyncCPU                   string          // the processes' CPU during the first scale start's GETs after the sync
	largeReady, largeSynced        []time.Duration // start → /readyz, start → the informer's first list is in
	smallRSS, largeRSS, largePeak  float64
	seededKeyReplayed, historyRead bool
	profileTop                     string
	imports                        importFigures
	starts                         startFigures
}

// spread is the median and range of a figure over runs.
type spread struct{ median, min, max float64 }

func spreadOf(values []float64) spread {
	v := slices.Clone(values)
	slices.Sort(v)
	if len(v) == 0 {
		return spread{}
	}
	return spread{median: v[len(v)/2], min: v[0], max: v[len(v)-1]}
}

func throughputs(runs []Summary) spread {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = r.Throughput
	}
	return spreadOf(v)
}

func p99s(runs []Summary) spread {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = float64(r.P99) / float64(time.Millisecond)
	}
	return spreadOf(v)
}

// ratios pairs the i-th operator run with the i-th reference run (they ran back to back).
func ratios(op, ref []Summary) spread {
	v := make([]float64, min(len(op), len(ref)))
	for i := range v {
		v[i] = op[i].Throughput / ref[i].Throughput
	}
	return spreadOf(v)
}

func errorsIn(runs ...[]Summary) int {
	n := 0
	for _, rs := range runs {
		for _, r := range rs {
			n += r.Errors
		}
	}
	return n
}

type target struct {
	what, goal, measured string
	met                  bool
}

// medianDuration is the median of ds (0 for none).
func medianDuration(ds []time.Duration) time.Duration {
	v := make([]float64, len(ds))
	for i, d := range ds {
		v[i] = float64(d)
	}
	return time.Duration(spreadOf(v).median)
}

func (r *results) targets() []target {
	get, write := ratios(r.opGet, r.bareGet), ratios(r.opSet, r.rawPatch)
	ceiling, bare := throughputs(r.ceiling), throughputs(r.bareGet)
	hot, writes := throughputs(r.hot), throughputs(r.opSet)
	lotRatio := ratios(r.lotConsumes, r.consumes)
	exact := !slices.Contains(r.hotExact, false) && len(r.hotExact) > 0
	return append([]target{
		{"load generator ceiling vs bare handler (so the GET ratio is not capped by the generator)", "≥ 125 %",
			fmt.Sprintf("%.0f vs %.0f req/s (%s)", ceiling.median, bare.median, pct(ceiling.median/bare.median)), ceiling.median >= 1.25*bare.median},
		{"GET throughput vs bare net/http handler, 100 users", "≥ 80 %", ratioText(get), get.median >= 0.8},
		{"GET p99, 100 users", "≤ 2 ms", msSpread(p99s(r.opGet)), p99s(r.opGet).median <= 2},
		{"POST (set) throughput vs raw client-go patches, same objects and concurrency", "≥ 85 %", ratioText(write), write.median >= 0.85},
		{"hot user: 200 concurrent consumes vs the distinct-user write rate", "≥ 100 %, exact",
			fmt.Sprintf("%s (%.0f vs %.0f/s), exact: %v", pct(hot.median/writes.median), hot.median, writes.median, exact), hot.median >= writes.median && exact},
		{fmt.Sprintf("consume on users with %d lots vs users with none (run in turn)", lotsPerUser), "≥ 90 %", ratioText(lotRatio), lotRatio.median >= 0.9},
		{"errors in the GET, write and hold runs", "0", fmt.Sprint(errorsIn(r.opGet, r.bareGet, r.opSet, r.rawPatch, r.holds, r.consumes, r.lotConsumes, r.twoGet)),
			errorsIn(r.opGet, r.bareGet, r.opSet, r.rawPatch, r.holds, r.consumes, r.lotConsumes, r.twoGet) == 0},
	}, r.scaleTargets()...)
}

// scaleTargets are the targets of the scale run: an operator restarted on r.scale objects.
func (r *results) scaleTargets() []target {
	large, small := throughputs(r.largeGet), throughputs(r.smallBesideLarge)
	largeRatio := ratios(r.largeGet, r.smallBesideLarge)
	ready := medianDuration(r.largeReady)
	return []target{
		{fmt.Sprintf("seeded grant keys are honoured, %d objects", r.scale), "a retried grant replays", fmt.Sprint(r.seededKeyReplayed), r.seededKeyReplayed},
		{fmt.Sprintf("seeded histories read back, %d objects", r.scale), "100 entries", fmt.Sprint(r.historyRead), r.historyRead},
		{fmt.Sprintf("RSS after sync, %d objects (%d grant keys and %d history entries each)", r.scale, scaleGrantKeys, historyEntries), fmt.Sprintf("≤ %.0f MiB", rssGoal(r.scale)),
			fmt.Sprintf("%.0f MiB", r.largeRSS), r.largeRSS > 0 && r.largeRSS <= rssGoal(r.scale)},
		{fmt.Sprintf("start → Ready, %d objects", r.scale), "≤ 6 s", ready.Round(10 * time.Millisecond).String(), len(r.largeReady) > 0 && ready <= 6*time.Second},
		{fmt.Sprintf("GET p99 from the first request after /readyz, while the informer lists, %d users", r.scale), "≤ 3 ms, no error",
			fmt.Sprintf("%s, %d errors", msSpread(p99s(r.listingGet)), errorsIn(r.listingGet)),
			len(r.listingGet) > 0 && p99s(r.listingGet).median <= 3 && errorsIn(r.listingGet) == 0},
		{fmt.Sprintf("GET p99 after the sync, %d users", r.scale), "≤ 3 ms", msSpread(p99s(r.largeGet)), p99s(r.largeGet).median <= 3 && errorsIn(r.largeGet) == 0},
		{fmt.Sprintf("GET throughput after the sync, %d users vs 100 users (run in turn)", r.scale), "≥ 80 %",
			fmt.Sprintf("%s (%.0f vs %.0f req/s)", ratioText(largeRatio), large.median, small.median), largeRatio.median >= 0.8},
	}
}

func (r *results) allTargetsMet() bool {
	for _, t := range slices.Concat(r.targets(), r.imports.targets(), r.starts.targets()) {
		if !t.met {
			return false
		}
	}
	return true
}

// countsOf lists how many requests each run answered.
func countsOf(runs []Summary) string {
	counts := make([]string, len(runs))
	for i, s := range runs {
		counts[i] = fmt.Sprint(s.Requests)
	}
	return strings.Join(counts, ", ")
}

func pct(f float64) string       { return fmt.Sprintf("%.0f %%", 100*f) }
func ms(d time.Duration) string  { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
func mark(ok bool) string        { return map[bool]string{true: "met", false: "**missed**"}[ok] }
func row(cells ...string) string { return "| " + strings.Join(cells, " | ") + " |\n" }

func ratioText(s spread) string {
	return fmt.Sprintf("%s (runs %s–%s)", pct(s.median), pct(s.min), pct(s.max))
}

func msSpread(s spread) string {
	return fmt.Sprintf("%.2f ms (runs %.2f–%.2f)", s.median, s.min, s.max)
}

func rateSpread(runs []Summary) string {
	s := throughputs(runs)
	return fmt.Sprintf("%.0f/s (%.0f–%.0f)", s.median, s.min, s.max)
}

func (r *results) write(dir string) error {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\nWritten by `make bench` (`go run ./hack/bench`); do not edit by hand. Loopback only, a fixed number of\n" +
		"requests per run. The operator runs as its own process (the built binary) against a real kube-apiserver and etcd\n" +
		"(envtest); the references (a bare net/http handler, raw client-go patches) and the operator run in turn,\n" +
		fmt.Sprintf("%d times each, and are compared by their medians, with the range over the runs beside them. GETs come from\n", r.rounds) +
		"a lean load generator (one connection per worker, pre-built request bytes, the same bytes to the operator and\n" +
		"the bare handler, Authorization included); its own ceiling, against a server that answers without parsing, is\n" +
		"measured in the same rounds.\n\n")
	fmt.Fprintf(&b, "Machine: %d cores, %s, linux/amd64; the load generator, the operator, the references, kube-apiserver and etcd\n"+
		"share them, so every figure includes their contention. Run: %s.\n\n", r.cpus, r.goVersion, r.started.UTC().Format(time.RFC3339))
	b.WriteString("## Targets\n\n")
	b.WriteString(row("target", "goal", "measured (median, range over runs)", "result") + row("---", "---", "---", "---"))
	for _, t := range slices.Concat(r.targets(), r.imports.targets(), r.starts.targets()) {
		b.WriteString(row(t.what, t.goal, t.measured, mark(t.met)))
	}
	b.WriteString("\n## Scenarios (medians, range over runs)\n\n")
	b.WriteString(row("scenario", "runs × requests", "concurrency", "throughput", "p50", "p99", "errors") + row("---", "---", "---", "---", "---", "---", "---"))
	for _, sc := range []struct {
		runs []Summary
		c    int
	}{
		{r.ceiling, getConcurrency}, {r.bareGet, getConcurrency}, {r.opGet, getConcurrency}, {r.twoGet, getConcurrency},
		{r.smallBesideLarge, getConcurrency}, {r.listingGet, getConcurrency}, {r.largeGet, getConcurrency}, {r.opSet, writeConcurrency}, {r.rawPatch, writeConcurrency},
		{r.consumes, writeConcurrency}, {r.lotConsumes, writeConcurrency}, {r.holds, writeConcurrency}, {r.hot, hotConsumes}, {r.twoHot, hotConsumes},
	} {
		if len(sc.runs) == 0 {
			continue
		}
		p50 := make([]float64, len(sc.runs))
		for i, s := range sc.runs {
			p50[i] = float64(s.P50) / float64(time.Millisecond)
		}
		b.WriteString(row(sc.runs[0].Name, fmt.Sprintf("%d × %d", len(sc.runs), sc.runs[0].Requests), fmt.Sprint(sc.c), rateSpread(sc.runs),
			fmt.Sprintf("%.2f ms", spreadOf(p50).median), msSpread(p99s(sc.runs)), fmt.Sprint(errorsIn(sc.runs))))
	}
	holds, consumes := throughputs(r.holds), throughputs(r.consumes)
	fmt.Fprintf(&b, "\nA hold's round trip (reserve, then capture) is two writes: %.0f round trips/s beside %.0f consumes/s (%s).\n",
		holds.median, consumes.median, pct(holds.median/consumes.median))
	b.WriteString("\n## Memory and start-up\n\n")
	b.WriteString(row("operator", "objects in its namespace", "start → /readyz", "start → every user in memory", "RSS after sync", "peak RSS") + row("---", "---", "---", "---", "---", "---"))
	b.WriteString(row("small", fmt.Sprint(100+writeUsers+2), r.smallReady.Round(10*time.Millisecond).String(), "", fmt.Sprintf("%.0f MiB", r.smallRSS), ""))
	b.WriteString(row("scale (median of the starts)", fmt.Sprint(r.scale), medianDuration(r.largeReady).Round(10*time.Millisecond).String(), medianDuration(r.largeSynced).Round(10*time.Millisecond).String(),
		fmt.Sprintf("%.0f MiB", r.largeRSS), fmt.Sprintf("%.0f MiB (whole run: initial list + GET load)", r.largePeak)))
	b.WriteString("\nReady means serving correctly: until the informer's first list is in, a user not seen yet is read from the\n" +
		"apiserver (docs/architecture.md). Each round restarts the scale operator; its GETs go out from the moment /readyz\n" +
		"answers and stop when it logs that the list is in" + fmt.Sprintf(" (requests answered before that, per round: %s).\n", countsOf(r.listingGet)))
	fmt.Fprintf(&b, "\nEach scale object holds %d applied grant keys and a %d-entry history (what 30 days of purchases and a busy user\n"+
		"leave); etcd holds %.0f MiB once they are in, and the apiserver spent %s sending each start its initial lists. Writing the\n"+
		"%d objects straight into etcd until the apiserver served them (not part of start-up): %v. A run on 1,000,000 users\n"+
		"(`make bench SCALE=1000000`) is in [%s](%s).\n", scaleGrantKeys, historyEntries, float64(r.etcdBytes)/(1<<20), r.listTimeText(),
		r.scale, r.seedTime.Round(time.Second), scaleDocName(1_000_000), scaleDocName(1_000_000))
	b.WriteString(r.imports.section())
	b.WriteString(r.starts.section())
	b.WriteString("\n## Latency\n\n![latency percentiles](bench-latency.png)\n")
	if r.profileTop != "" {
		b.WriteString("\n## CPU profile of the operator during an extra GET run, not counted above (top 40 by cumulative time)\n\n```text\n" + r.profileTop + "```\n")
	}
	b.WriteString("\nReproduce: `make bench` (about 20 minutes on 2 cores).\n")
	fmt.Print("\n" + b.String())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "benchmarks.md"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	last := func(runs []Summary) Summary { return runs[len(runs)-1] }
	return writePlot(filepath.Join(dir, "bench-latency.png"), []Summary{last(r.bareGet), last(r.opGet), last(r.listingGet), last(r.largeGet)}, []Summary{last(r.opSet), last(r.rawPatch), last(r.hot)})
}

// startProfile begins a CPU profile of the operator over seconds; the returned func waits
// for it and renders the top functions.
func startProfile(dir, pprofAddr string, seconds int) func(bin string) string {
	path := filepath.Join(dir, "get-cpu.pprof")
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, seconds))
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(path)
		if err == nil {
			_, err = io.Copy(f, resp.Body)
			f.Close()
		}
		done <- err
	}()
	return func(bin string) string {
		if err := <-done; err != nil {
			return "profile failed: " + err.Error() + "\n"
		}
		out, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=40", bin, path).Output()
		if err != nil {
			return "pprof failed: " + err.Error() + "\n"
		}
		lines := strings.Split(string(out), "\n")
		for i, l := range lines {
			if strings.HasPrefix(strings.TrimSpace(l), "flat") {
				return strings.Join(lines[i:], "\n")
			}
		}
		return string(out)
	}
}
