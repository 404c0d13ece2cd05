package e2e

// The environments the docs' shell blocks run in, each started once per TestDocs run, and
// the bash session a doc's blocks share.
//
//   - make-run: what `make run` starts on a machine with no cluster configured:
//     hack/run-local with bin/manager (and bin/kubectl-credits, which make run builds too),
//     run from a copy of the repository (symbolic links to its files and a bin/ of its own)
//     with a clean environment, so bin/local-kubeconfig is the copy's. Blocks get KUBECONFIG and the dev TOKEN exported, as the README has the
//     user do. Every doc starts from a fresh make run's state: before a doc uses it after
//     another doc, every UserCredits in default is deleted.
//   - cluster: a bare control plane (no CRD) shared by the docs, admin KUBECONFIG exported;
//     `given=installed` applies config/default first, as the README's install block does.
//   - fresh-cluster: a bare control plane of the doc's own, for the blocks that install.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gitread/usercredits-operator/internal/controlplane"
	"github.com/gitread/usercredits-operator/internal/operator"
	"github.com/gitread/usercredits-operator/test/framework"
)

// docEnv is one running environment.
type docEnv struct {
	name       string
	kubeconfig string
	vars       []string          // exported into the block's shell
	rewrites   map[string]string // a default port that was taken → the one used instead
	apiBase    string            // make-run: the API's URL
	token      string            // make-run: the dev token
}

// docEnvs starts environments when a block first names them and stops them when TestDocs ends.
type docEnvs struct {
	parent  *testing.T
	root    string // the copy of the repository blocks run in
	home    string
	makeRun *docEnv
	failed  error // make run did not start: every doc that needs it fails with this
	shared  *docEnv
	fresh   map[string]*docEnv // by doc
	lastDoc string             // the doc that last used make-run
}

func newDocEnvs(t *testing.T) *docEnvs {
	t.Helper()
	root := filepath.Join(t.TempDir(), "repo")
	entries, err := os.ReadDir(framework.RepoRoot())
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{root, filepath.Join(root, "bin")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range entries {
		if e.Name() == "bin" || e.Name() == ".git" {
			continue
		}
		if err := os.Symlink(filepath.Join(framework.RepoRoot(), e.Name()), filepath.Join(root, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return &docEnvs{parent: t, root: root, home: t.TempDir(), fresh: map[string]*docEnv{}}
}

// get returns the environment name for a block of doc, starting it on first use.
func (e *docEnvs) get(t *testing.T, name, doc string) (*docEnv, error) {
	var err error
	defer func(start time.Time) {
		if d := time.Since(start); d > time.Second {
			t.Logf("env=%s ready in %v", name, d.Round(100*time.Millisecond))
		}
	}(time.Now())
	switch name {
	case "make-run":
		if e.failed != nil {
			return nil, e.failed
		}
		if e.makeRun == nil {
			if e.makeRun, err = e.startMakeRun(t); err != nil {
				e.failed = err
			}
		} else if e.lastDoc != doc {
			err = e.resetMakeRun(t)
		}
		e.lastDoc = doc
		return e.makeRun, err
	case "cluster":
		if e.shared == nil {
			e.shared, err = e.startCluster(name)
		}
		return e.shared, err
	case "fresh-cluster":
		if e.fresh[doc] == nil {
			e.fresh[doc], err = e.startCluster(name)
		}
		return e.fresh[doc], err
	}
	return nil, fmt.Errorf("no environment %q", name)
}

func (e *docEnvs) startCluster(name string) (*docEnv, error) {
	fc, err := framework.StartCluster(operator.NewScheme(), framework.ClusterOptions{WithoutCRDs: true})
	if err != nil {
		return nil, err
	}
	e.parent.Cleanup(func() { _ = fc.Stop() })
	kubeconfig := filepath.Join(e.parent.TempDir(), "admin.kubeconfig")
	if err := controlplane.WriteAdminKubeconfig(fc.Env, "docs-admin", kubeconfig); err != nil {
		return nil, err
	}
	return &docEnv{name: name, kubeconfig: kubeconfig, vars: []string{"KUBECONFIG=" + kubeconfig}}, nil
}

// defaultPorts are make run's listen addresses: the docs name the API's.
var defaultPorts = []struct{ flag, port string }{
	{"api-bind-address", "8080"}, {"health-probe-bind-address", "8081"}, {"metrics-bind-address", "8443"},
}

// startMakeRun builds bin/manager and bin/run-local as make run does and runs them. A default
// port that is taken is replaced by a free one, and the blocks' commands with it.
func (e *docEnvs) startMakeRun(t *testing.T) (*docEnv, error) {
	bin := filepath.Join(e.root, "bin")
	manager, err := framework.BuildManager(bin)
	if err != nil {
		return nil, err
	}
	runner, err := framework.BuildRunLocal(bin)
	if err != nil {
		return nil, err
	}
	// make run builds the kubectl plugin too (make build): docs/migration.md runs it from bin/.
	if _, err := framework.Build(bin, "./cmd/kubectl-credits", "kubectl-credits"); err != nil {
		return nil, err
	}
	assets, err := controlplane.BinaryDir()
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		env := &docEnv{name: "make-run", kubeconfig: filepath.Join(bin, "local-kubeconfig"), rewrites: map[string]string{}, apiBase: "http://127.0.0.1:8080"}
		args := []string{"--manager=" + manager, "--"}
		for _, p := range defaultPorts {
			if attempt == 0 && portFree(p.port) {
				continue
			}
			addr, err := framework.FreeAddr()
			if err != nil {
				return nil, err
			}
			args = append(args, "--"+p.flag+"="+addr)
			t.Logf("make run: port %s is taken, using --%s=%s", p.port, p.flag, addr)
			if p.port == "8080" { // the port the docs' commands name
				env.rewrites["127.0.0.1:8080"], env.rewrites["localhost:8080"] = addr, strings.Replace(addr, "127.0.0.1", "localhost", 1)
				env.apiBase = "http://" + addr
				t.Logf("make run: the docs' commands call %s instead of 127.0.0.1:8080", addr)
			}
		}
		out, err := e.runLocal(t, runner, args, assets)
		if err != nil && attempt == 0 && strings.Contains(out, "address already in use") {
			continue // taken since we looked
		}
		if err != nil {
			return nil, fmt.Errorf("make run: %v\n%s", err, out)
		}
		env.token = strings.TrimSpace(strings.SplitN(framework.LineContaining(out, "export TOKEN="), "=", 2)[1])
		env.vars = []string{"KUBECONFIG=" + env.kubeconfig, "TOKEN=" + env.token}
		return env, nil
	}
}

// runLocal starts run-local as a terminal would (its own process group, a clean environment)
// and returns its output once it has printed the dev token.
func (e *docEnvs) runLocal(t *testing.T, runner string, args []string, assets string) (string, error) {
	cmd := exec.Command(runner, args...)
	cmd.Dir = e.root
	cmd.Env = []string{"HOME=" + e.home, "PATH=" + os.Getenv("PATH"), "KUBEBUILDER_ASSETS=" + assets}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	e.parent.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) // Ctrl-C
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if e.parent.Failed() {
			e.parent.Logf("make run's output:\n%s", tail(out.String(), 8000))
		}
	})
	gone := false
	framework.Eventually(t, 2*time.Minute, func() error {
		select {
		case <-exited:
			gone = true
			return nil
		default:
		}
		if !strings.Contains(out.String(), "export TOKEN=") {
			return fmt.Errorf("make run printed no dev token:\n%s", tail(out.String(), 4000))
		}
		return nil
	})
	if gone && !strings.Contains(out.String(), "export TOKEN=") {
		return out.String(), fmt.Errorf("exited before printing the dev token")
	}
	return out.String(), nil
}

// resetMakeRun gives the next doc a fresh make run's state: no UserCredits in default.
func (e *docEnvs) resetMakeRun(t *testing.T) error {
	cmd := exec.Command("kubectl", "--kubeconfig", e.makeRun.kubeconfig, "delete", "usercredits", "--all", "-n", "default")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("kubectl delete usercredits --all: %v\n%s", err, out)
	}
	framework.Eventually(t, 15*time.Second, func() error { // until the API's cache has seen it
		if status, body := httpDo(t, "GET", e.makeRun.apiBase+"/api/credits", e.makeRun.token, ""); status != 200 || body != `{"credits":0}` {
			return fmt.Errorf("after deleting every UserCredits the dev user's balance is %d %s", status, body)
		}
		return nil
	})
	t.Logf("make run: every UserCredits deleted, as after a fresh make run")
	return nil
}

// given establishes a block's precondition in env.
func (e *docEnvs) given(t *testing.T, env *docEnv, name string) error {
	kubectl := func(stdin string, args ...string) error {
		cmd := exec.Command("kubectl", append([]string{"--kubeconfig", env.kubeconfig}, args...)...)
		cmd.Dir = e.root
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	switch name {
	case "installed": // the README's install block, unless the cluster has it already
		if kubectl("", "get", "namespace", bundleNamespace) == nil {
			return nil
		}
		t.Logf("given installed: kubectl create namespace %s; kubectl apply --server-side -k config/default", bundleNamespace)
		if err := kubectl("", "create", "namespace", bundleNamespace); err != nil {
			return err
		}
		return kubectl("", "apply", "--server-side", "-k", "config/default")
	case "objects-from-before-the-role-rename": // the Role and RoleBinding earlier bundles made
		role, err := os.ReadFile(filepath.Join(e.root, "config", "rbac", "role.yaml"))
		if err != nil {
			return err
		}
		for _, doc := range strings.Split(string(role), "\n---\n") {
			if strings.Contains(doc, "\nkind: Role\n") {
				old := strings.Replace(doc, "namespace: system", "namespace: "+bundleNamespace, 1)
				t.Logf("given objects-from-before-the-role-rename: Role usercredits-manager-role and RoleBinding usercredits-manager-rolebinding")
				return kubectl(old+"\n---\n"+previousManagerRoleBinding, "apply", "--server-side", "-f", "-")
			}
		}
		return fmt.Errorf("no Role in config/rbac/role.yaml")
	}
	return fmt.Errorf("no precondition %q", name)
}

func portFree(port string) bool {
	l, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// shell is one bash session (set -euo pipefail) that runs a doc's blocks step by step, as a
// terminal would; each step's output goes to files, and its completion is reported on fd 3.
type shell struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	done   chan string // step numbers as bash reports them; closed when bash exits
	stderr lockedBuffer
	dir    string
	n      int
}

// startShell starts bash in root with vars exported; dir receives the steps' output.
func startShell(root, dir, home string, vars []string) (*shell, error) {
	s := &shell{cmd: exec.Command("bash", "--noprofile", "--norc"), dir: dir, done: make(chan string)}
	s.cmd.Dir = root
	s.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "LANG=C.UTF-8"}, vars...)
	s.cmd.Stdout, s.cmd.Stderr = &s.stderr, &s.stderr
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	s.cmd.ExtraFiles = []*os.File{w}
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	_ = w.Close()
	go func() {
		lines := bufio.NewScanner(r)
		for lines.Scan() {
			s.done <- lines.Text()
		}
		_ = s.cmd.Wait()
		close(s.done)
	}()
	_, err = io.WriteString(s.stdin, "set -euo pipefail\n")
	return s, err
}

// run runs one step in the session and returns what it printed on stdout.
func (s *shell) run(command string, timeout time.Duration) (string, error) {
	s.n++
	out, errOut := filepath.Join(s.dir, fmt.Sprint(s.n, ".out")), filepath.Join(s.dir, fmt.Sprint(s.n, ".err"))
	script := fmt.Sprintf("{\n%s\n} >%q 2>%q </dev/null 3>&-\necho %d >&3\n", command, out, errOut, s.n)
	if _, err := io.WriteString(s.stdin, script); err != nil {
		return "", fmt.Errorf("the shell is gone: %v", err)
	}
	select {
	case n, ok := <-s.done:
		stdout, _ := os.ReadFile(out)
		if !ok || n != fmt.Sprint(s.n) {
			stderr, _ := os.ReadFile(errOut)
			return string(stdout), fmt.Errorf("failed (%v): stdout:\n%s\nstderr:\n%s%s", s.cmd.ProcessState, stdout, stderr, s.stderr.String())
		}
		return string(stdout), nil
	case <-time.After(timeout):
		s.close()
		return "", fmt.Errorf("did not finish within %v", timeout)
	}
}

func (s *shell) close() {
	_ = s.stdin.Close()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// lockedBuffer is an output buffer a process and the test share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
