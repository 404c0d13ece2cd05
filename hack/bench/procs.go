package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/gitread/usercredits-operator/internal/httpapi"
	"github.com/gitread/usercredits-operator/test/framework"
)

// server is a server the benchmark runs as its own OS process, and the API address it serves.
type server struct {
	*framework.Process
	addr string
}

func (s *server) stop() { _ = s.Stop(15 * time.Second) }

func (s *server) rssMiB() (float64, float64) { return s.RSSMiB() }

// waitLog waits until the server has logged text.
func (s *server) waitLog(text string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !strings.Contains(s.Logs(), text) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the operator did not log %q within %v", text, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// startOperator runs the manager binary against namespace and waits until it is ready;
// it returns the process and how long it took from exec to /readyz.
func startOperator(bin, kubeconfig, namespace, jwtKeyPEM, workDir string, extra ...string) (*server, time.Duration, error) {
	api, err := framework.FreeAddr()
	if err != nil {
		return nil, 0, err
	}
	health, err := framework.FreeAddr()
	if err != nil {
		return nil, 0, err
	}
	// No per-user rate limit: the benchmark measures capacity, and its load comes from few users.
	args := append([]string{"--kubeconfig=" + kubeconfig, "--namespace=" + namespace, "--allow-user-writes", "--user-rate-limit=0",
		"--api-bind-address=" + api, "--health-probe-bind-address=" + health, "--metrics-bind-address=0"}, extra...)
	env := []string{"HOME=" + workDir, "PATH=" + os.Getenv("PATH"), "CLERK_JWT_KEY=" + jwtKeyPEM}
	p, err := framework.StartProcess(bin, args, env)
	if err != nil {
		return nil, 0, err
	}
	s := &server{Process: p, addr: api}
	if err := p.WaitReady("http://"+health+"/readyz", 5*time.Minute); err != nil {
		s.stop()
		_ = os.WriteFile(filepath.Join(workDir, "operator-"+namespace+".log"), []byte(p.Logs()), 0o644)
		return nil, 0, fmt.Errorf("operator for %s: %w (log: %s)", namespace, err, filepath.Join(workDir, "operator-"+namespace+".log"))
	}
	return s, time.Since(p.Started), nil
}

// startServer runs this program again as one of its servers (-bare-server or
// -canned-server), in its own process.
func startServer(flag string) (*server, error) {
	addr, err := framework.FreeAddr()
	if err != nil {
		return nil, err
	}
	p, err := framework.StartProcess(os.Args[0], []string{flag + "=" + addr}, os.Environ())
	if err != nil {
		return nil, err
	}
	s := &server{Process: p, addr: addr}
	if err := p.WaitReady("http://"+addr+"/healthz", 30*time.Second); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// serveBare is the reference: a net/http handler answering the same JSON as GET
// /api/credits, with no authentication and no storage.
// It runs on the operator's own httpapi.Server (the same timeouts and limits), so the
// comparison is between handlers.
func serveBare(addr string) error {
	body := []byte(`{"credits":5}`)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	mux.HandleFunc("/api/credits", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
	return (&httpapi.Server{Settings: httpapi.Settings{BindAddress: addr}, Handler: mux, Log: logr.Discard()}).Start(context.Background())
}
