package e2e

// make run's development entry point (hack/run-local), run as a terminal runs it: its own
// process group, which a Ctrl-C signals as a whole, its output into a pipe that may close
// (make run | tee run.log).

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/gitread/usercredits-operator/internal/controlplane"
	"github.com/gitread/usercredits-operator/test/framework"
)

// runLocal is hack/run-local started with a clean environment: no cluster configured, no
// Clerk key, HOME without a kubeconfig.
type runLocal struct {
	cmd    *exec.Cmd
	stderr *bufio.Reader
	pipes  []io.Closer
}

func startRunLocal(t *testing.T, env []string, managerArgs ...string) *runLocal {
	t.Helper()
	dir := t.TempDir()
	runner := buildRunLocal(t)
	assets, err := controlplane.BinaryDir()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--manager=" + suite.bin, "--kubeconfig-out=" + filepath.Join(dir, "local-kubeconfig"), "--"}, managerArgs...)
	cmd := exec.Command(runner, args...)
	cmd.Dir = framework.RepoRoot()
	cmd.Env = append([]string{"HOME=" + dir, "PATH=" + os.Getenv("PATH"), "KUBEBUILDER_ASSETS=" + assets}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a terminal's foreground group
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &runLocal{cmd: cmd, stderr: bufio.NewReader(stderr), pipes: []io.Closer{stdout, stderr}}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	return r
}

// runLocalBinary is hack/run-local, built once for the package.
var runLocalBinary struct {
	once sync.Once
	path string
	err  error
}

func buildRunLocal(t *testing.T) string {
	t.Helper()
	runLocalBinary.once.Do(func() { runLocalBinary.path, runLocalBinary.err = framework.BuildRunLocal(filepath.Dir(suite.bin)) })
	if runLocalBinary.err != nil {
		t.Fatal(runLocalBinary.err)
	}
	return runLocalBinary.path
}

// readUntil reads the runner's stderr until a line contains marker, and returns what it read.
func (r *runLocal) readUntil(t *testing.T, marker string, timeout time.Duration) string {
	t.Helper()
	done := make(chan string, 1)
	go func() {
		var b strings.Builder
		for {
			line, err := r.stderr.ReadString('\n')
			b.WriteString(line)
			if strings.Contains(line, marker) || err != nil {
				done <- b.String()
				return
			}
		}
	}()
	select {
	case out := <-done:
		if !strings.Contains(out, marker) {
			t.Fatalf("make run ended before %q:\n%s", marker, out)
		}
		return out
	case <-time.After(timeout):
		t.Fatalf("make run did not print %q within %v", marker, timeout)
	}
	return ""
}

// children lists the processes whose parent is pid.
func children(pid int) map[int]string {
	out := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
		s := string(stat)
		name := s[strings.IndexByte(s, '(')+1 : strings.LastIndexByte(s, ')')]
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out[child] = name
		}
	}
	return out
}

// running reports whether pid is a live process (not gone, not a zombie).
func running(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(stat)
	return !strings.HasPrefix(strings.TrimSpace(s[strings.LastIndexByte(s, ')')+1:]), "Z")
}

// TestMakeRunStopsEverythingWhenItsPipeCloses is `make run 2>&1 | tee run.log`, then Ctrl-C:
// tee dies with the Ctrl-C, and nothing may be left running (before, the manager died of
// SIGPIPE and etcd and kube-apiserver were orphaned).
func TestMakeRunStopsEverythingWhenItsPipeCloses(t *testing.T) {
	api, health := freeAddr(t), freeAddr(t)
	const whsec = "whsec_makerun"
	r := startRunLocal(t, []string{"STRIPE_WEBHOOK_SECRET=" + whsec}, "--api-bind-address="+api, "--health-probe-bind-address="+health, "--metrics-bind-address=0")
	out := r.readUntil(t, "export TOKEN=", 90*time.Second)
	if !strings.Contains(out, "--allow-user-writes is implied") {
		t.Errorf("the dev token's message does not say --allow-user-writes is implied:\n%s", out)
	}
	token := strings.TrimSpace(strings.SplitN(framework.LineContaining(out, "export TOKEN="), "=", 2)[1])
	expectHTTP(t, "dev token sets its balance", 200, `{"success":true,"credits":10}`)(httpDo(t, "POST", "http://"+api+"/api/credits", token, `{"credits":10}`))
	// STRIPE_WEBHOOK_SECRET=whsec_... make run: the webhook is served (docs/stripe.md's stripe listen loop).
	payload := checkoutEvent("evt_makerun", "checkout.session.completed", paidSession("cs_test_makerun", "user_dev", 250, nil))
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: whsec, Timestamp: time.Now()})
	expectHTTP(t, "a signed paid checkout under make run", 200, `{"received":true}`)(httpDo(t, "POST", "http://"+api+"/api/webhooks/stripe", "", string(payload),
		"Stripe-Signature", signed.Header, "Content-Type", "application/json"))
	expectHTTP(t, "the purchase reached the balance", 200, `{"credits":12}`)(httpDo(t, "GET", "http://"+api+"/api/credits", token, ""))

	kids := children(r.cmd.Process.Pid)
	names := map[string]bool{}
	for _, name := range kids {
		names[name] = true
	}
	for _, want := range []string{"etcd", "kube-apiserver", "manager"} {
		if !names[want] {
			t.Fatalf("make run's processes: %v, want %s among them", kids, want)
		}
	}
	for _, p := range r.pipes { // tee is gone: every write to the terminal now fails
		_ = p.Close()
	}
	time.Sleep(200 * time.Millisecond)
	if err := syscall.Kill(-r.cmd.Process.Pid, syscall.SIGINT); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- r.cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(45 * time.Second):
		t.Fatal("make run did not exit within 45s of Ctrl-C")
	}
	for pid, name := range kids {
		if running(pid) {
			t.Errorf("%s (pid %d) is still running after make run exited", name, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// TestMakeRunNamesTheFlagForABusyPort: the API's port is taken; make run says which flag
// to change, and stops its control plane.
func TestMakeRunNamesTheFlagForABusyPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	r := startRunLocal(t, nil, "--api-bind-address="+taken.Addr().String(), "--health-probe-bind-address="+freeAddr(t), "--metrics-bind-address=0")
	out, _ := io.ReadAll(r.stderr)
	err = r.cmd.Wait()
	if err == nil {
		t.Fatalf("make run exited 0 although the API's port was taken:\n%s", out)
	}
	for _, want := range []string{"address already in use", "--api-bind-address", "make run RUN_ARGS=--api-bind-address="} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the error does not say %q:\n%s", want, out)
		}
	}
	if !strings.Contains(string(out), "local control plane stopped") {
		t.Errorf("the control plane was not stopped:\n%s", out)
	}
}
