package main

// The import scenario (issue 22): a `\copy credits to … csv header` of importRows rows, 20
// of them bad, imported with the built plugin (kubectl credits import, its default flags)
// into an empty namespace an operator serves, timed until the controller has written the
// last status (served); then the same import again, which must write nothing, and an
// export of the namespace from one LIST.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/auth"
	"github.com/gitread/usercredits-operator/test/framework"
)

const (
	importNamespace = "import"
	importBadRows   = 20
	// importGoal is the issue's: imported and served within two minutes.
	importGoal = 2 * time.Minute
)

// importFigures are the import scenario's results.
type importFigures struct {
	rows, good         int
	imported, served   time.Duration // import start → the plugin's exit, → the last status written
	rerun, export      time.Duration
	rerunWroteNothing  bool
	badReported        int  // the bad rows the plugin listed with their lines
	exported           int  // users in the export
	servedRight        bool // sampled users read their imported balance through the API
	summary, rerunText string
}

func (f importFigures) targets() []target {
	if f.rows == 0 {
		return nil
	}
	return []target{
		{fmt.Sprintf("import of %d rows (%d bad) until every status is written", f.rows, importBadRows), "≤ 2 min",
			fmt.Sprintf("%v (the plugin: %v; %.0f rows/s)", f.served.Round(100*time.Millisecond), f.imported.Round(100*time.Millisecond),
				float64(f.good)/f.served.Seconds()), f.served > 0 && f.served <= importGoal},
		{"import: bad rows listed with their lines, imported balances served", fmt.Sprintf("%d listed, served", importBadRows),
			fmt.Sprintf("%d listed, served: %v", f.badReported, f.servedRight), f.badReported == importBadRows && f.servedRight},
		{"the same import again", "writes nothing", fmt.Sprintf("wrote nothing: %v, in %v", f.rerunWroteNothing, f.rerun.Round(100*time.Millisecond)), f.rerunWroteNothing},
		{fmt.Sprintf("export of the %d imported users, one LIST", f.good), "every user", fmt.Sprintf("%d users in %v", f.exported, f.export.Round(100*time.Millisecond)),
			f.exported == f.good},
	}
}

// importCSV is the file: good rows user_imp_000000 … with a balance and a time, and
// importBadRows bad ones of every kind, spread through it.
func importCSV(rows int) ([]byte, int) {
	var b bytes.Buffer
	b.WriteString("user_id,credits,updated_at\n")
	bad := []string{"%s,-5,2024-05-01 00:00:00+00", "%s,2.5,2024-05-01 00:00:00+00", "bad user %s,1,", "%s,1,2024-05-01 00:00:00+00,surplus",
		"%s,lots,"}
	good, every := 0, rows/importBadRows
	for i := range rows {
		user := userID("imp", i)
		if i%every == every/2 && i/every < importBadRows {
			k := i / every
			if k%6 == 5 { // a duplicate of the row before it
				fmt.Fprintf(&b, "%s,%d,2024-05-01 12:00:00+00\n", userID("imp", i-1), i)
				continue
			}
			fmt.Fprintf(&b, bad[k%6%len(bad)]+"\n", user)
			continue
		}
		good++
		fmt.Fprintf(&b, "%s,%d,2024-05-01 12:%02d:%02d+00\n", user, i%1000, (i/60)%60, i%60)
	}
	return b.Bytes(), good
}

// runImport runs the scenario with rows rows against cluster, as the admin of kubeconfig.
func runImport(ctx context.Context, cluster *framework.Cluster, managerBin, kubeconfig, work string, signer *auth.Signer, rows int) (importFigures, error) {
	f := importFigures{rows: rows}
	step(fmt.Sprintf("import: %d rows (%d bad) with kubectl credits import into a namespace an operator serves", rows, importBadRows))
	plugin, err := framework.Build(work, "./cmd/kubectl-credits", "kubectl-credits")
	if err != nil {
		return f, err
	}
	data, good := importCSV(rows)
	f.good = good
	file := filepath.Join(work, "credits.csv")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		return f, err
	}
	op, _, err := startOperator(managerBin, kubeconfig, importNamespace, signer.PublicKeyPEM(), filepath.Join(work, "import"))
	if err != nil {
		return f, err
	}
	defer op.stop()
	cw, err := client.NewWithWatch(cluster.Config, client.Options{Scheme: cluster.Client.Scheme()})
	if err != nil {
		return f, err
	}
	servedCh := make(chan error, 1)
	watchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	started := time.Now()
	if err := watchServed(watchCtx, cw, importNamespace, good, servedCh); err != nil {
		return f, err
	}
	out, errOut, err := plugin1(plugin, kubeconfig, "import", file, "-n", importNamespace)
	f.imported, f.summary = time.Since(started), out
	if err != nil {
		return f, fmt.Errorf("kubectl credits import: %v\n%s\n%s", err, out, lastLines(errOut, 30))
	}
	f.badReported = strings.Count(errOut, file+":")
	fmt.Printf("  the plugin exited after %v:\n%s", f.imported.Round(100*time.Millisecond), indent(out))
	select {
	case err := <-servedCh:
		if err != nil {
			return f, err
		}
	case <-time.After(10 * time.Minute):
		return f, fmt.Errorf("the statuses of %d imported users were not all written within 10 minutes", good)
	}
	f.served = time.Since(started)
	fmt.Printf("  every status written %v after the import started\n", f.served.Round(100*time.Millisecond))
	if f.servedRight, err = sampleServed(op.addr, signer, rows); err != nil {
		return f, err
	}

	again := time.Now()
	out, errOut, err = plugin1(plugin, kubeconfig, "import", file, "-n", importNamespace)
	f.rerun, f.rerunText = time.Since(again), out
	if err != nil {
		return f, fmt.Errorf("kubectl credits import, again: %v\n%s\n%s", err, out, lastLines(errOut, 30))
	}
	f.rerunWroteNothing = strings.Contains(out, "Nothing was written")
	fmt.Printf("  again, %v:\n%s", f.rerun.Round(100*time.Millisecond), indent(out))

	export := time.Now()
	out, errOut, err = plugin1(plugin, kubeconfig, "export", "-n", importNamespace)
	f.export = time.Since(export)
	if err != nil {
		return f, fmt.Errorf("kubectl credits export: %v\n%s", err, errOut)
	}
	f.exported = strings.Count(out, "\n") - 1 // less the header
	fmt.Printf("  export: %d users in %v (%s)\n", f.exported, f.export.Round(100*time.Millisecond), strings.TrimSpace(errOut))
	return f, nil
}

// plugin1 runs the plugin with args and the admin's kubeconfig.
func plugin1(bin, kubeconfig string, args ...string) (string, string, error) {
	cmd := exec.Command(bin, append(args, "--kubeconfig", kubeconfig)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// watchServed watches namespace from now and sends nil on done once want objects carry a
// status the controller wrote for their spec (observedGeneration, a time, Valid): the
// balance is served as the controller judged it.
func watchServed(ctx context.Context, c client.WithWatch, namespace string, want int, done chan<- error) error {
	w, err := c.Watch(ctx, &creditsv1alpha1.UserCreditsList{}, client.InNamespace(namespace))
	if err != nil {
		return err
	}
	go func() {
		served := make(map[string]bool, want)
		n, rv := 0, ""
		for {
			for ev := range w.ResultChan() {
				obj, ok := ev.Object.(*creditsv1alpha1.UserCredits)
				if !ok || ev.Type == watch.Error {
					continue
				}
				rv = obj.ResourceVersion
				ok = ev.Type != watch.Deleted && obj.Status.ObservedGeneration == obj.Generation && obj.Status.UpdatedAt != nil &&
					meta.IsStatusConditionTrue(obj.Status.Conditions, creditsv1alpha1.ConditionValid)
				if ok != served[obj.Name] {
					served[obj.Name] = ok
					n += map[bool]int{true: 1, false: -1}[ok]
				}
				if n == want {
					w.Stop()
					done <- nil
					return
				}
			}
			if ctx.Err() != nil {
				done <- ctx.Err()
				return
			}
			// The apiserver ended the watch: go on from the last event seen.
			if w, err = c.Watch(ctx, &creditsv1alpha1.UserCreditsList{}, client.InNamespace(namespace),
				&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}}); err != nil {
				done <- err
				return
			}
		}
	}()
	return nil
}

// sampleServed reads 100 of the imported users through the API: each has the balance its
// row gave.
func sampleServed(addr string, signer *auth.Signer, rows int) (bool, error) {
	for k := range 100 {
		i := (k*7919 + 13) % rows
		if !isGoodRow(i, rows) {
			continue
		}
		tok, err := signer.SessionToken(userID("imp", i), time.Hour)
		if err != nil {
			return false, err
		}
		status, body := get(context.Background(), "http://"+addr+"/api/credits", tok)
		if want := fmt.Sprintf(`{"credits":%d}`, i%1000); status != 200 || string(body) != want {
			fmt.Printf("  %s reads %d %s, want %s\n", userID("imp", i), status, body, want)
			return false, nil
		}
	}
	return true, nil
}

// isGoodRow reports whether importCSV wrote row i as a good row.
func isGoodRow(i, rows int) bool {
	every := rows / importBadRows
	return !(i%every == every/2 && i/every < importBadRows)
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// section is the import's part of benchmarks.md: what the plugin printed.
func (f importFigures) section() string {
	if f.rows == 0 {
		return ""
	}
	return fmt.Sprintf("\n## Import\n\n`kubectl credits import` (its default flags) of a %d-row `\\copy credits to … csv header` with %d bad rows, "+
		"into an empty namespace an operator serves: the plugin exited after %v, and the controller had written every status %v after the "+
		"import started. Its summary:\n\n```text\n%s```\n\nThe same import again (%v):\n\n```text\n%s```\n",
		f.rows, importBadRows, f.imported.Round(100*time.Millisecond), f.served.Round(100*time.Millisecond), f.summary,
		f.rerun.Round(100*time.Millisecond), f.rerunText)
}

// runImportOnly runs the import scenario on a cluster of its own and prints its targets
// (make bench BENCH_ARGS=-import-only): a quick look, docs/ untouched.
func runImportOnly(rows int) int {
	var f importFigures
	err := soloRun("usercredits-bench-import-", "", []string{importNamespace}, func(e soloEnv) (err error) {
		f, err = runImport(context.Background(), e.cluster, e.bin, e.kubeconfig, e.work, e.signer, rows)
		return err
	})
	return exitCode(err, f.targets)
}
