package main

import (
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// stopGrace is how long the manager has to stop after SIGTERM before it is killed; the
// Deployment gives it 30 s too.
const stopGrace = 30 * time.Second

// managerProcess is the manager running as a child, tied to this process: it is in a
// process group of its own (the terminal's Ctrl-C reaches this process, which stops the
// manager and then the control plane, in that order), it gets SIGTERM if this process dies
// (Pdeathsig), and its output is copied through this process, so a closed terminal pipe
// never kills it with SIGPIPE.
type managerProcess struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

func startManager(bin string, args, env []string) (*managerProcess, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	copied := make(chan struct{}, 2)
	relay := func(dst io.Writer, src io.Reader) {
		// Write errors (the pipe closed) are ignored: reading on keeps the manager from
		// blocking on a full pipe.
		_, _ = io.Copy(ignoreErrors{dst}, src)
		copied <- struct{}{}
	}
	go relay(os.Stdout, stdout)
	go relay(os.Stderr, stderr)
	p := &managerProcess{cmd: cmd, exited: make(chan struct{})}
	go func() {
		<-copied
		<-copied
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// waitOrStop waits for the manager to exit, stopping it on the first signal (SIGTERM, then
// SIGKILL after stopGrace or on a second signal), and returns its exit code.
func (p *managerProcess) waitOrStop(signals <-chan os.Signal) int {
	select {
	case <-p.exited:
		return exitCode(p.err)
	case sig := <-signals:
		say("%v: stopping the manager", sig)
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.exited:
	case <-signals:
		say("second signal: killing the manager")
		_ = p.cmd.Process.Kill()
		<-p.exited
	case <-time.After(stopGrace):
		say("the manager did not stop within %v: killing it", stopGrace)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	return exitCode(p.err)
}

func exitCode(err error) int {
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		return exit.ExitCode()
	}
	return 1
}

// waitReady polls url until it answers 200 or the manager exits.
func waitReady(p *managerProcess, url string, timeout time.Duration) bool {
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		select {
		case <-p.exited:
			return false
		case <-time.After(100 * time.Millisecond):
		}
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
	}
	return false
}

// ignoreErrors reports every write as done: the reader keeps draining the pipe.
type ignoreErrors struct{ w io.Writer }

func (i ignoreErrors) Write(p []byte) (int, error) {
	_, _ = i.w.Write(p)
	return len(p), nil
}
