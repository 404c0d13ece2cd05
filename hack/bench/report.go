package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// results are the figures of one make bench run.
type results struct {
	started              time.Time
	cpus                 int
	goVersion            string
	scale                int
	bareGet, opGet       Summary
	opSet, rawPatch      Summary
	consume              Summary
	largeGet             Summary
	smallReady           time.Duration
	largeReady, seedTime time.Duration
	smallRSS, largeRSS   float64
	largePeak            float64
	profileTop           string
	seededKeyReplayed    bool
}

type target struct {
	what, goal, measured string
	met                  bool
}

func (r *results) targets() []target {
	getRatio := r.opGet.Throughput / r.bareGet.Throughput
	writeRatio := r.opSet.Throughput / r.rawPatch.Throughput
	consume5xx := 0
	for status, n := range r.consume.Statuses {
		if status >= 500 || status < 0 {
			consume5xx += n
		}
	}
	return []target{
		{"GET throughput vs bare net/http handler", "≥ 60 %", pct(getRatio), getRatio >= 0.6},
		{"GET p99 (100 users)", "≤ 5 ms", ms(r.opGet.P99), r.opGet.P99 <= 5*time.Millisecond},
		{"GET errors", "0", fmt.Sprint(r.opGet.Errors), r.opGet.Errors == 0},
		{"POST throughput vs raw client-go patches", "≥ 70 %", pct(writeRatio), writeRatio >= 0.7},
		{"200 concurrent consumes: 5xx", "0", fmt.Sprintf("%d (%d × 200 in %v)", consume5xx, r.consume.Statuses[200], r.consume.Duration.Round(time.Millisecond)), consume5xx == 0 && r.consume.Statuses[200] == 200},
		{fmt.Sprintf("seeded grant keys are honoured (a retried grant replays), %d objects", r.scale), "yes", fmt.Sprint(r.seededKeyReplayed), r.seededKeyReplayed},
		{fmt.Sprintf("RSS after cache sync, %d objects with %d grant keys each", r.scale, scaleGrantKeys), "≤ 300 MiB", fmt.Sprintf("%.0f MiB", r.largeRSS), r.largeRSS > 0 && r.largeRSS <= 300},
		{fmt.Sprintf("start → Ready, %d objects", r.scale), "≤ 10 s", r.largeReady.Round(10 * time.Millisecond).String(), r.largeReady <= 10*time.Second},
		{fmt.Sprintf("GET p99, %d users", r.scale), "≤ 5 ms", ms(r.largeGet.P99), r.largeGet.P99 <= 5*time.Millisecond && r.largeGet.Errors == 0},
	}
}

func (r *results) allTargetsMet() bool {
	for _, t := range r.targets() {
		if !t.met {
			return false
		}
	}
	return true
}

func pct(f float64) string       { return fmt.Sprintf("%.0f %%", 100*f) }
func ms(d time.Duration) string  { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
func mark(ok bool) string        { return map[bool]string{true: "met", false: "**missed**"}[ok] }
func row(cells ...string) string { return "| " + strings.Join(cells, " | ") + " |\n" }
func reqs(s Summary) string      { return fmt.Sprintf("%.0f/s", s.Throughput) }
func counts(s Summary) string    { return fmt.Sprint(s.Statuses) }

func (r *results) write(dir string) error {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\nWritten by `make bench` (`go run ./hack/bench`); do not edit by hand. Loopback only, a fixed number of\n" +
		"requests per scenario. The operator runs as its own process (the built binary) against a real kube-apiserver\n" +
		"and etcd (envtest); the load generator is a separate process on the same machine.\n\n")
	fmt.Fprintf(&b, "Machine: %d cores, %s, linux/amd64. Run: %s.\n\n", r.cpus, r.goVersion, r.started.UTC().Format(time.RFC3339))
	b.WriteString("## Targets\n\n")
	b.WriteString(row("target", "goal", "measured", "result") + row("---", "---", "---", "---"))
	for _, t := range r.targets() {
		b.WriteString(row(t.what, t.goal, t.measured, mark(t.met)))
	}
	b.WriteString("\n## Scenarios\n\n")
	b.WriteString(row("scenario", "requests", "concurrency", "throughput", "p50", "p99", "max", "statuses") + row("---", "---", "---", "---", "---", "---", "---", "---"))
	for _, s := range []struct {
		sum Summary
		c   int
	}{{r.bareGet, getConcurrency}, {r.opGet, getConcurrency}, {r.largeGet, getConcurrency}, {r.opSet, writeConcurrency}, {r.rawPatch, writeConcurrency}, {r.consume, 200}} {
		b.WriteString(row(s.sum.Name, fmt.Sprint(s.sum.Requests), fmt.Sprint(s.c), reqs(s.sum), ms(s.sum.P50), ms(s.sum.P99), ms(s.sum.Max), counts(s.sum)))
	}
	b.WriteString("\n## Memory and start-up\n\n")
	b.WriteString(row("operator", "objects in its namespace", "start → /readyz", "RSS after sync", "peak RSS") + row("---", "---", "---", "---", "---"))
	b.WriteString(row("small", fmt.Sprint(100+writeUsers+1), r.smallReady.Round(10*time.Millisecond).String(), fmt.Sprintf("%.0f MiB", r.smallRSS), ""))
	b.WriteString(row("scale", fmt.Sprint(r.scale), r.largeReady.Round(10*time.Millisecond).String(), fmt.Sprintf("%.0f MiB", r.largeRSS), fmt.Sprintf("%.0f MiB (whole run: initial list + GET load)", r.largePeak)))
	fmt.Fprintf(&b, "\nCreating the %d objects (not part of start-up): %v.\n", r.scale, r.seedTime.Round(time.Second))
	b.WriteString("\n## Latency\n\n![latency percentiles](bench-latency.png)\n")
	if r.profileTop != "" {
		b.WriteString("\n## CPU profile of the operator during the GET run (top 40 by cumulative time)\n\n```\n" + r.profileTop + "```\n")
	}
	b.WriteString("\nReproduce: `make bench` (about 5 minutes on 2 cores, most of it creating the scale objects).\n")
	fmt.Print("\n" + b.String())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "benchmarks.md"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	return writePlot(filepath.Join(dir, "bench-latency.png"), []Summary{r.bareGet, r.opGet, r.largeGet}, []Summary{r.opSet, r.rawPatch})
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
