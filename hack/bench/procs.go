package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// process is a server the benchmark runs as a separate OS process, so that its CPU and
// memory are its own and not the load generator's.
type process struct {
	cmd  *exec.Cmd
	addr string // API address
	log  *os.File
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startOperator runs the manager binary against namespace and waits until it is ready;
// it returns the process and how long it took from exec to /readyz.
func startOperator(bin, kubeconfig, namespace, jwtKeyPEM, workDir string, extra ...string) (*process, time.Duration, error) {
	api, health := freeAddr(), freeAddr()
	args := append([]string{"--kubeconfig=" + kubeconfig, "--namespace=" + namespace, "--allow-user-writes",
		"--api-bind-address=" + api, "--health-probe-bind-address=" + health, "--metrics-bind-address=0"}, extra...)
	logFile, err := os.Create(filepath.Join(workDir, "operator-"+namespace+".log"))
	if err != nil {
		return nil, 0, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"HOME=" + workDir, "PATH=" + os.Getenv("PATH"), "CLERK_JWT_KEY=" + jwtKeyPEM}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	p := &process{cmd: cmd, addr: api, log: logFile}
	if err := waitReady("http://"+health+"/readyz", 5*time.Minute); err != nil {
		p.stop()
		return nil, 0, fmt.Errorf("operator for %s: %w (log: %s)", namespace, err, logFile.Name())
	}
	return p, time.Since(start), nil
}

// startBare runs this program again as the bare handler server.
func startBare() (*process, error) {
	addr := freeAddr()
	cmd := exec.Command(os.Args[0], "-bare-server="+addr)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, addr: addr}
	if err := waitReady("http://"+addr+"/healthz", 30*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func waitReady(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within %v", url, timeout)
}

// rssMiB reads the process's resident and peak resident memory from /proc.
func (p *process) rssMiB() (rss, peak float64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
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

func (p *process) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	if p.log != nil {
		p.log.Close()
	}
}

// serveBare is the reference: a net/http handler answering the same JSON as GET
// /api/credits, with no authentication and no storage.
func serveBare(addr string) error {
	body := []byte(`{"credits":5}`)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	mux.HandleFunc("/api/credits", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
	return http.ListenAndServe(addr, mux)
}
