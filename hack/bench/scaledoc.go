package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// defaultScale is the scale run of the default make bench, reported in docs/benchmarks.md.
// Any other make bench SCALE runs the scale scenario alone and reports it in a file of its
// own (scaleDocName), so that the default run's figures are never replaced by another size's.
const defaultScale = 100_000

// scaleDocName is the file of docs/ that make bench SCALE=scale writes.
func scaleDocName(scale int) string { return fmt.Sprintf("benchmarks-%d.md", scale) }

// rssGoal is the RSS after sync the issue asks for at scale objects (MiB): 300 at the
// default scale run's 100,000, 1 GiB at a million.
func rssGoal(scale int) float64 {
	if scale >= 1_000_000 {
		return 1024
	}
	return 300
}

// listTimeText is how long the apiserver took to send the scale operator its initial list
// (the median over rounds and the range), or why it is not known.
func (r *results) listTimeText() string {
	if len(r.listTime) == 0 {
		return "not measured (no watch-list request finished)"
	}
	s := spreadOf(r.listTime)
	return fmt.Sprintf("%.1f s (runs %.1f–%.1f)", s.median, s.min, s.max)
}

// scaleFacts are the scale run's figures beside its targets: what it started on and what
// a start cost.
func (r *results) scaleFacts() [][2]string {
	seedRate := float64(r.scale) / r.seedTime.Seconds()
	return [][2]string{
		{"objects", fmt.Sprintf("%d, each with %d applied grant keys and a %d-entry history (%s)", r.scale, scaleGrantKeys, historyEntries, "what 30 days of purchases and a busy user leave")},
		{"etcd database size once they are in", fmt.Sprintf("%.0f MiB", float64(r.etcdBytes)/(1<<20))},
		{"writing them (straight into etcd, until the apiserver serves them; not measured)", fmt.Sprintf("%v (%.0f objects/s)", r.seedTime.Round(time.Second), seedRate)},
		{"start → /readyz", durationsText(r.largeReady)},
		{"the apiserver sending the start its initial lists (apiserver_watch_list_duration_seconds: every object, and the few of foreign names, done by /readyz)", r.listTimeText()},
		{"start → every user in memory (the operator's log)", durationsText(r.largeSynced)},
		{"RSS after the sync; peak over the whole run", fmt.Sprintf("%.0f MiB; %.0f MiB", r.largeRSS, r.largePeak)},
		{"kube-apiserver and etcd after the sync" + map[bool]string{true: " (both run with GOMEMLIMIT=" + controlPlaneMemLimit + ")"}[r.scale > defaultScale], r.controlPlaneMem},
		{"CPU (cores) during the GETs after the sync", r.afterSyncCPU},
		{"managedFields in the objects", map[bool]string{true: "none (see hack/bench/etcdseed.go, scaleManager)", false: "as the apiserver records seed's writes"}[scaleManager(r.scale) == ""]},
		{"GETs answered from /readyz until the sync, per round", countsOf(r.listingGet)},
	}
}

func durationsText(ds []time.Duration) string {
	if len(ds) == 0 {
		return ""
	}
	v := make([]float64, len(ds))
	for i, d := range ds {
		v[i] = d.Seconds()
	}
	s := spreadOf(v)
	return fmt.Sprintf("%.2f s (runs %.2f–%.2f)", s.median, s.min, s.max)
}

// writeScaleDoc writes the scale run alone (make bench SCALE=…) to dir/scaleDocName.
func (r *results) writeScaleDoc(dir string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks: %d users\n\nWritten by `make bench SCALE=%d` (`go run ./hack/bench -scale-only -scale %d -rounds %d -scale-doc %s`); "+
		"do not edit by hand. The default run, at %d users, is in [benchmarks.md](benchmarks.md); this one runs only its scale "+
		"scenario: an operator (the built binary) started %d time(s) on %d UserCredits in its namespace, against a real kube-apiserver "+
		"and etcd (envtest), with GETs from the moment `/readyz` answers until its informer has listed every object, then after. "+
		"The 100-user operator's GETs run in turn with the ones after the sync, with the same objects in the apiserver.\n\n",
		r.scale, r.scale, r.scale, r.rounds, dir, defaultScale, r.rounds, r.scale)
	fmt.Fprintf(&b, "Machine: %d cores, %s, linux/amd64, shared by the load generator, both operators, kube-apiserver and etcd. Run: %s.\n\n",
		r.cpus, r.goVersion, r.started.UTC().Format(time.RFC3339))
	b.WriteString("## Targets\n\n" + row("target", "goal", "measured (median, range over runs)", "result") + row("---", "---", "---", "---"))
	for _, t := range r.scaleTargets() {
		b.WriteString(row(t.what, t.goal, t.measured, mark(t.met)))
	}
	b.WriteString("\n## Figures\n\n" + row("figure", "value") + row("---", "---"))
	for _, f := range r.scaleFacts() {
		b.WriteString(row(f[0], f[1]))
	}
	b.WriteString("\n" + row("scenario", "runs × requests", "throughput", "p50", "p99", "errors") + row("---", "---", "---", "---", "---", "---"))
	for _, runs := range [][]Summary{r.listingGet, r.largeGet, r.smallBesideLarge} {
		if len(runs) == 0 {
			continue
		}
		p50 := make([]float64, len(runs))
		for i, s := range runs {
			p50[i] = float64(s.P50) / float64(time.Millisecond)
		}
		b.WriteString(row(runs[0].Name, fmt.Sprintf("%d × %d", len(runs), runs[0].Requests), rateSpread(runs),
			fmt.Sprintf("%.2f ms", spreadOf(p50).median), msSpread(p99s(runs)), fmt.Sprint(errorsIn(runs))))
	}
	b.WriteString("\nThe objects are written straight into etcd in the form the apiserver stores them (hack/bench/etcdseed.go), " +
		"because through the apiserver (a create and a status write each, ~110 objects/s here) a million would take hours; " +
		"the apiserver's watch cache takes them in as it takes any write, and the run starts once it serves them all.\n")
	fmt.Print("\n" + b.String())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, scaleDocName(r.scale)), []byte(b.String()), 0o644)
}
