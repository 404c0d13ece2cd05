package framework

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FreeAddr returns a loopback address with a port free now, for a process started next.
// The port is picked below the kernel's ephemeral range: a port from that range (what
// listening on ":0" hands out) is also what the kernel gives the next outgoing
// connection, and with apiservers, etcd and managers all connecting at once one of them
// took the port between this check and the process binding it ("address already in use").
func FreeAddr() (string, error) {
	low := ephemeralPortsStart()
	for range 50 {
		port := freePortFloor + rand.IntN(low-freePortFloor)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		addr := l.Addr().String()
		_ = l.Close()
		return addr, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// freePortFloor keeps FreeAddr above the well-known and commonly configured ports.
const freePortFloor = 20000

// ephemeralPortsStart is the first port the kernel hands out for ":0" and outgoing
// connections (Linux: /proc/sys/net/ipv4/ip_local_port_range; 32768 where unknown).
func ephemeralPortsStart() int {
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if low, err := strconv.Atoi(f[0]); err == nil && low > freePortFloor+1000 {
				return low
			}
		}
	}
	return 32768
}

// BuildManager builds the manager binary (./cmd) into dir and returns its path.
func BuildManager(dir string) (string, error) { return Build(dir, "./cmd", "manager") }

// BuildRunLocal builds make run's development entry point (./hack/run-local) into dir.
func BuildRunLocal(dir string) (string, error) { return Build(dir, "./hack/run-local", "run-local") }

// Build builds the main package pkg of this repository into dir/name and returns its path.
func Build(dir, pkg, name string) (string, error) {
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// Process is the manager binary (or another server) running as its own OS process, so that
// its CPU and memory are its own.
type Process struct {
	Cmd *exec.Cmd
	// Started is when the process was started.
	Started time.Time
	logs    syncBuffer
	exited  chan struct{}
	err     error
}

// StartProcess starts bin with args and env, collecting its output.
func StartProcess(bin string, args, env []string) (*Process, error) {
	p := &Process{Cmd: exec.Command(bin, args...)}
	p.Cmd.Env = env
	p.Cmd.Stdout, p.Cmd.Stderr = &p.logs, &p.logs
	p.Started = time.Now()
	if err := p.Cmd.Start(); err != nil {
		return nil, err
	}
	p.exited = make(chan struct{})
	go func() { // reaped at once, so that an early exit is seen (WaitReady) and leaves no zombie
		p.err = p.Cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Wait waits for the process to exit and returns how it did.
func (p *Process) Wait() error {
	<-p.exited
	return p.err
}

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// WaitReady polls url until it answers 200, for at most timeout.
func (p *Process) WaitReady(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !p.Running() {
			return fmt.Errorf("the process exited (%v): %s", p.err, lastLines(p.Logs(), 20))
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within %v", url, timeout)
}

// Logs is what the process has written so far.
func (p *Process) Logs() string { return p.logs.String() }

// Stop interrupts the process, as Ctrl-C or the kubelet would, and kills it if it has not
// exited within grace; it returns the process's error, if any.
func (p *Process) Stop(grace time.Duration) error {
	if !p.Running() {
		return nil
	}
	_ = p.Cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(grace):
		_ = p.Cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("did not exit within %v of an interrupt", grace)
	}
}

// RSSMiB reads the process's resident and peak resident memory from /proc.
func (p *Process) RSSMiB() (rss, peak float64) { return RSSMiBOf(p.Cmd.Process.Pid) }

// RSSMiBOf reads process pid's resident and peak resident memory (VmRSS, VmHWM) from
// /proc, in MiB; zeros when it cannot.
func RSSMiBOf(pid int) (rss, peak float64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(fields[1], 64)
		switch fields[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			peak = kb / 1024
		}
	}
	return rss, peak
}

// lastLines is the last n lines of text.
func lastLines(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// syncBuffer collects a process's output safely while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
