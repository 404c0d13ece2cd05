package main

// Loopback HTTP load and latency summaries for `make bench`.
// Every run is bounded: a fixed number of requests with a deadline.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Request builds the i-th request of a run.
type Request func(i int) (*http.Request, error)

// Summary is what a run measured.
type Summary struct {
	Name       string
	Requests   int
	Errors     int // transport errors and responses with an unexpected status
	Duration   time.Duration
	Throughput float64 // requests per second
	P50, P99   time.Duration
	Max        time.Duration
	Latencies  []time.Duration // sorted
	Statuses   map[int]int
}

// Run sends n requests from concurrency workers (closed loop) and returns when all are
// answered or ctx ends. ok decides which statuses count as success.
func Run(ctx context.Context, name string, client *http.Client, n, concurrency int, build Request, ok func(status int) bool) Summary {
	return Do(ctx, name, n, concurrency, func(ctx context.Context, i int) int {
		req, err := build(i)
		if err != nil {
			return -1
		}
		resp, err := client.Do(req.WithContext(ctx))
		if err != nil {
			return -1
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}, ok)
}

// Do runs op(0) … op(n-1) from concurrency workers and times each; op returns a status,
// -1 for an error. Once ctx ends no request is sent, and only those sent are summarized.
func Do(ctx context.Context, name string, n, concurrency int, op func(ctx context.Context, i int) int, ok func(status int) bool) Summary {
	return doPerWorker(ctx, name, n, concurrency, func() (func(context.Context, int) int, func()) { return op, func() {} }, ok)
}

// doPerWorker is Do where each worker has its own op (and its own state, such as a
// connection), made by newWorker and stopped when the worker is done.
func doPerWorker(ctx context.Context, name string, n, concurrency int, newWorker func() (op func(ctx context.Context, i int) int, stop func()), ok func(status int) bool) Summary {
	latencies := make([]time.Duration, n)
	statuses := make([]int, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range concurrency {
		wg.Go(func() {
			op, stop := newWorker()
			defer stop()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				statuses[i] = op(ctx, i)
				latencies[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	if ctx.Err() != nil { // ended early: the requests never sent (status 0) are not counted
		sent := 0
		for i, st := range statuses {
			if st != 0 {
				latencies[sent], statuses[sent] = latencies[i], st
				sent++
			}
		}
		latencies, statuses = latencies[:sent], statuses[:sent]
	}
	return Summarize(name, latencies, statuses, wall, ok)
}

// Summarize computes a Summary from per-request latencies and statuses (-1: transport error).
func Summarize(name string, latencies []time.Duration, statuses []int, wall time.Duration, ok func(int) bool) Summary {
	s := Summary{Name: name, Requests: len(latencies), Duration: wall, Statuses: map[int]int{}}
	for _, st := range statuses {
		s.Statuses[st]++
		if st < 0 || !ok(st) {
			s.Errors++
		}
	}
	s.Latencies = slices.Clone(latencies)
	slices.Sort(s.Latencies)
	s.P50, s.P99 = Percentile(s.Latencies, 50), Percentile(s.Latencies, 99)
	if len(s.Latencies) > 0 {
		s.Max = s.Latencies[len(s.Latencies)-1]
	}
	if wall > 0 {
		s.Throughput = float64(len(latencies)) / wall.Seconds()
	}
	return s
}

// Percentile is the nearest-rank percentile p (0–100] of sorted latencies.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

// String is one line for logs.
func (s Summary) String() string {
	return fmt.Sprintf("%-34s %7d req  %9.0f req/s  p50 %-9v p99 %-9v max %-9v errors %d",
		s.Name, s.Requests, s.Throughput, s.P50.Round(time.Microsecond), s.P99.Round(time.Microsecond), s.Max.Round(time.Microsecond), s.Errors)
}

// NewClient is a keep-alive client sized for concurrency connections to one host.
func NewClient(concurrency int) *http.Client {
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConns: concurrency, MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency},
	}
}
