package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var sorted []time.Duration
	for i := 1; i <= 100; i++ {
		sorted = append(sorted, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 1: time.Millisecond} {
		if got := Percentile(sorted, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if Percentile(nil, 99) != 0 {
		t.Error("empty input")
	}
	if got := Percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("single sample p99 = %v", got)
	}
}

func TestRunCountsEveryRequestAndError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("fail") == "1" {
			w.WriteHeader(500)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	s := Run(context.Background(), "t", NewClient(4), 100, 4, func(i int) (*http.Request, error) {
		url := srv.URL
		if i%10 == 0 {
			url += "?fail=1"
		}
		return http.NewRequest("GET", url, nil)
	}, func(st int) bool { return st == 200 })
	if s.Requests != 100 || s.Errors != 10 || s.Statuses[200] != 90 || s.Statuses[500] != 10 {
		t.Fatalf("summary: %+v", s.Statuses)
	}
	if s.P50 <= 0 || s.P99 < s.P50 || s.Throughput <= 0 {
		t.Fatalf("summary: %s", s)
	}
}

// TestLeanRunCountsEveryRequestAndReconnects: the lean generator sends every request,
// reads each answer's status, counts a dropped connection as an error and dials again.
func TestLeanRunCountsEveryRequestAndReconnects(t *testing.T) {
	var seen, dropped atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1)%7 == 0 {
			dropped.Add(1)
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close() // no answer: the worker must count an error and dial again
			return
		}
		if r.URL.Path == "/fail" {
			w.WriteHeader(500)
		}
		_, _ = w.Write([]byte(`{"credits":5}`))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	reqs := [][]byte{rawRequest("GET", "/ok", "tok", ""), rawRequest("GET", "/fail", "tok", "")}
	s := leanRun("t", addr, reqs, 300, 4, ok200)
	answered := s.Statuses[200] + s.Statuses[500]
	if s.Requests != 300 || dropped.Load() == 0 || int64(s.Statuses[-1]) != dropped.Load() || answered+s.Statuses[-1] != 300 {
		t.Fatalf("300 requests, %d dropped by the server: %v", dropped.Load(), s.Statuses)
	}
	if s.Statuses[200] == 0 || s.Statuses[500] == 0 || s.Errors != s.Statuses[500]+s.Statuses[-1] {
		t.Fatalf("statuses %v, errors %d", s.Statuses, s.Errors)
	}
}

// TestDoStoppedCountsOnlyTheRequestsSent: a run whose context ends part way (the GETs
// while the informer lists stop at the sync) summarizes the requests it sent, none of the
// unsent ones as errors or as zero latencies.
func TestDoStoppedCountsOnlyTheRequestsSent(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sent atomic.Int64
	s := Do(ctx, "t", 1000, 4, func(context.Context, int) int {
		if sent.Add(1) == 100 {
			cancel()
		}
		time.Sleep(100 * time.Microsecond)
		return 200
	}, ok200)
	if s.Requests != int(sent.Load()) || s.Requests < 100 || s.Requests > 104 || s.Errors != 0 || s.Statuses[0] != 0 {
		t.Fatalf("%d sent: summary of %d requests, %d errors, statuses %v", sent.Load(), s.Requests, s.Errors, s.Statuses)
	}
	if s.Latencies[0] < 100*time.Microsecond {
		t.Fatalf("an unsent request was counted: fastest %v", s.Latencies[0])
	}
}
