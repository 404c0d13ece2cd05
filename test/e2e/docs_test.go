package e2e

// TestDocs runs every example command of README.md and docs/*.md (issue 18): each shell
// block runs, as written, in the environment its annotation names (docs_env_test.go), and
// what a step prints is compared with the output the doc shows below it; a block that
// cannot run here is skipped with the reason written in the doc. Go blocks are compiled.
// The conventions a doc follows are in docs_extract_test.go.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitread/usercredits-operator/test/framework"
)

// stepTimeout bounds one command of a doc.
const stepTimeout = time.Minute

func TestDocs(t *testing.T) {
	started := time.Now()
	docs, problems := readDocs(framework.RepoRoot())
	for _, p := range problems {
		t.Error(p)
	}
	t.Run("go", func(t *testing.T) { compileGoBlocks(t, docs) })
	envs := newDocEnvs(t)
	var skips []string
	for _, d := range docs {
		for _, b := range d.blocks {
			if b.skip != "" {
				skips = append(skips, fmt.Sprintf("%s:%d (%s): %s", b.doc, b.line, b.lang, b.skip))
			}
			for _, s := range b.skipLines {
				skips = append(skips, fmt.Sprintf("%s:%d %q: %s", b.doc, b.line, s.pattern, s.reason))
			}
		}
		t.Run(d.path, func(t *testing.T) { runDoc(t, envs, d) })
	}
	t.Logf("not run here:\n  %s", strings.Join(skips, "\n  "))
	t.Logf("TestDocs took %v", time.Since(started).Round(time.Second))
}

// runDoc runs a doc's shell blocks in order; the blocks of one environment share a session.
func runDoc(t *testing.T, envs *docEnvs, d docFile) {
	shells := map[string]*shell{}
	defer func() {
		for _, s := range shells {
			s.close()
		}
	}()
	for _, b := range d.blocks {
		if !isShell(b.lang) {
			continue
		}
		at := fmt.Sprintf("%s:%d", b.doc, b.line)
		if b.skip != "" {
			t.Logf("%s: skipped: %s", at, b.skip)
			continue
		}
		env, err := envs.get(t, b.env, d.path)
		if err != nil {
			t.Fatalf("%s: env=%s: %v", at, b.env, err)
		}
		sh := shells[b.env]
		if sh == nil {
			if sh, err = startShell(envs.root, filepath.Join(t.TempDir(), b.env), envs.home, env.vars); err != nil {
				t.Fatal(err)
			}
			shells[b.env] = sh
		}
		for _, g := range b.given {
			if err := envs.given(t, env, g); err != nil {
				t.Fatalf("%s: given=%s: %v", at, g, err)
			}
		}
		skipped := make([]bool, len(b.skipLines))
		for _, step := range b.steps() {
			if i := skipLine(b.skipLines, step); i >= 0 {
				skipped[i] = true
				t.Logf("%s:%d: not run: %s: %s", b.doc, step.line, firstLine(step.command), b.skipLines[i].reason)
				continue
			}
			if b.env == "make-run" && isMakeRun(step.command) {
				t.Logf("%s:%d: make run: started by the test (bin/manager and bin/run-local built, run-local running)", b.doc, step.line)
				continue
			}
			runStep(t, sh, b.doc, step, rewrite(step.command, env.rewrites))
		}
		for i, used := range skipped {
			if !used {
				t.Errorf("%s: skip-line %q matches no command of the block", at, b.skipLines[i].pattern)
			}
		}
	}
}

// runStep runs one command and compares its output with the doc's. A read-only command is
// repeated until its output matches (for up to 20s): the doc shows the state once the
// controller has caught up, as a person would see it a moment later.
func runStep(t *testing.T, sh *shell, doc string, step docStep, command string) {
	t.Helper()
	at := fmt.Sprintf("%s:%d", doc, step.line)
	run := func() string {
		out, err := sh.run(command, stepTimeout)
		if err != nil {
			t.Fatalf("%s: $ %s\n%v", at, command, err)
		}
		return out
	}
	if step.output == nil {
		t.Logf("%s: $ %s\n%s", at, command, tail(run(), 2000))
		return
	}
	want := strings.Join(step.output, "\n")
	if readOnly(step.command) {
		attempts := 0
		framework.Eventually(t, 20*time.Second, func() error {
			attempts++
			out := run()
			if err := matchOutput(step.output, out); err != nil {
				return fmt.Errorf("%s: $ %s\n%v\nprinted:\n%s\nthe doc shows:\n%s", at, command, err, out, want)
			}
			t.Logf("%s: $ %s\n%s\n(as the doc shows; %d attempts)", at, command, strings.TrimRight(out, "\n"), attempts)
			return nil
		})
		return
	}
	out := run()
	if err := matchOutput(step.output, out); err != nil {
		t.Errorf("%s: $ %s\n%v\nprinted:\n%s\nthe doc shows:\n%s", at, command, err, out, want)
		return
	}
	t.Logf("%s: $ %s\n%s\n(as the doc shows)", at, command, strings.TrimRight(out, "\n"))
}

// readOnly reports whether running command again changes nothing: kubectl get or describe,
// or a curl that neither posts nor sends a body.
func readOnly(command string) bool {
	f := strings.Fields(command)
	switch {
	case len(f) > 1 && f[0] == "kubectl" && (f[1] == "get" || f[1] == "describe"):
		return true
	case len(f) > 0 && f[0] == "curl":
		return !strings.Contains(command, " -X ") && !strings.Contains(command, " -d ")
	}
	return false
}

func isMakeRun(command string) bool {
	f := strings.Fields(command)
	return len(f) >= 2 && f[0] == "make" && f[1] == "run" && (len(f) == 2 || strings.HasPrefix(f[2], "#"))
}

func skipLine(skips []lineSkip, step docStep) int {
	for i, s := range skips {
		if strings.Contains(step.command, s.pattern) {
			return i
		}
	}
	return -1
}

// rewrite replaces default ports that were taken with the ones make run used instead.
func rewrite(command string, rewrites map[string]string) string {
	for from, to := range rewrites {
		command = strings.ReplaceAll(command, from, to)
	}
	return command
}

func firstLine(s string) string { return strings.SplitN(s, "\n", 2)[0] }

// goBlockPrelude declares what the docs' Go snippets leave to their reader: the caller's
// context and user ID are the wrapping function's parameters, and these (c: a client the
// page made in an earlier block).
const goBlockPrelude = `package docsnippets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/gitread/usercredits-operator/pkg/client"
)

var (
	errBuyMore   = errors.New("the user must buy more credits")
	errNoCredits = errors.New("the user has no credits")
	c            *client.Client
	_            = time.Second
	_            = fmt.Sprint
	_            = os.Getenv
	_            = exec.Command
)

func generateREADME(context.Context) error { return nil }
`

// compileGoBlocks compiles each Go block as the body of a function returning error, in a
// package of this module that exists only in a go build -overlay; compile errors name the
// doc's lines (//line directives).
func compileGoBlocks(t *testing.T, docs []docFile) {
	var src strings.Builder
	src.WriteString(goBlockPrelude)
	n := 0
	for _, d := range docs {
		for _, b := range d.blocks {
			if b.lang != "go" || b.skip != "" {
				continue
			}
			n++
			fmt.Fprintf(&src, "\nfunc snippet%d(ctx context.Context, userID string) (err error) {\n//line %s:%d\n%s\n\treturn\n}\n",
				n, filepath.Join(framework.RepoRoot(), b.doc), b.bodyLine, b.body)
			t.Logf("%s:%d: compiling", b.doc, b.line)
		}
	}
	dir := t.TempDir()
	file, overlay := filepath.Join(dir, "snippets.go"), filepath.Join(dir, "overlay.json")
	pkg := filepath.Join(framework.RepoRoot(), "test", "e2e", "docsnippets")
	if err := os.WriteFile(file, []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(overlay, []byte(fmt.Sprintf(`{"Replace":{%q:%q}}`, filepath.Join(pkg, "snippets.go"), file)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-overlay="+overlay, "./test/e2e/docsnippets")
	cmd.Dir = framework.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("the docs' Go blocks do not compile: %v\n%s", err, out)
	}
}
