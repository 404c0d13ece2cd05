package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gitread/usercredits-operator/test/framework"
)

// minAvailableMiB is the memory the machine must keep available during a scale run
// larger than the default: below it the run stops (guardMemory) rather than let the
// kernel's OOM killer pick a process, perhaps not one of the run's.
const minAvailableMiB = 1536

// controlPlaneMemLimit is the GOMEMLIMIT kube-apiserver and etcd run with in a scale run
// larger than the default (they inherit the bench's environment): at a million objects
// the apiserver's watch cache alone is several GiB live, and Go's default (GOGC=100, no
// limit) would let its heap reach twice that before collecting.
// At a million objects without managedFields a limit of 10 GiB kept it collecting without
// pause (RSS 10.2 GiB at the limit, 1.3 cores busy after the sync).
const controlPlaneMemLimit = "14GiB"

// guardMemory checks the machine's available memory every second until stop is closed;
// when it falls below minAvailableMiB it prints the run's processes' memory, kills them
// (the bench's own children: the control plane and the operators) and exits.
func guardMemory(stop <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if avail := memAvailableMiB(); avail > 0 && avail < minAvailableMiB {
			fmt.Fprintf(os.Stderr, "bench: the machine has %.0f MiB available (< %d MiB): stopping the run\n", avail, minAvailableMiB)
			for pid, name := range children() {
				rss, peak := framework.RSSMiBOf(pid)
				fmt.Fprintf(os.Stderr, "  %s (pid %d): RSS %.0f MiB, peak %.0f MiB\n", name, pid, rss, peak)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			os.Exit(1)
		}
	}
}

// memAvailableMiB is /proc/meminfo's MemAvailable (0 when unknown).
func memAvailableMiB() float64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "MemAvailable:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// children are the bench's child processes, by pid, with their command names.
func children() map[int]string {
	out := map[int]string{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …: the command may hold spaces, so fields count from its ')'.
		s := string(data)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == os.Getpid() {
			pid, _ := strconv.Atoi(filepath.Base(dir))
			out[pid] = s[strings.IndexByte(s, '(')+1 : strings.LastIndexByte(s, ')')]
		}
	}
	return out
}

// controlPlaneMemText is kube-apiserver's and etcd's resident memory now and at their peak.
func controlPlaneMemText(cluster *framework.Cluster) string {
	pids := controlPlanePIDs(cluster)
	var parts []string
	for _, name := range []string{"kube-apiserver", "etcd"} {
		if pid, ok := pids[name]; ok {
			rss, peak := framework.RSSMiBOf(pid)
			parts = append(parts, fmt.Sprintf("%s %.0f MiB (peak %.0f MiB)", name, rss, peak))
		}
	}
	return strings.Join(parts, ", ")
}

// cpuShares is each process's CPU time over wall, in cores, in a fixed order.
func cpuShares(cpu map[string]time.Duration, wall time.Duration) string {
	var parts []string
	for _, name := range []string{"operator", "kube-apiserver", "etcd"} {
		if d, ok := cpu[name]; ok && wall > 0 {
			parts = append(parts, fmt.Sprintf("%s %.2f", name, d.Seconds()/wall.Seconds()))
		}
	}
	return strings.Join(parts, ", ")
}
