package httpapi

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startLimitedServer serves a fixture's handler on loopback with short limits.
func startLimitedServer(t *testing.T, f *fixture) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Listener: ln, Handler: f.handler, ReadHeaderTimeout: 300 * time.Millisecond,
		ReadTimeout: 500 * time.Millisecond, MaxHeaderBytes: 8 << 10}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// closedWithin reports whether the server ends the connection (EOF, reset or a response
// followed by close) within d, reading whatever it sends.
func closedWithin(conn net.Conn, d time.Duration) (bool, string) {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	data, err := io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false, string(data)
	}
	return true, string(data)
}

func TestSlowlorisHeadersAreCutOff(t *testing.T) {
	addr := startLimitedServer(t, newFixture(t, true))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Headers that never end.
	fmt.Fprintf(conn, "GET /api/credits HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	start := time.Now()
	if closed, _ := closedWithin(conn, 3*time.Second); !closed {
		t.Fatal("a connection with unfinished headers was held open past 3s (ReadHeaderTimeout 300ms)")
	}
	t.Logf("slow-header connection closed after %v", time.Since(start).Round(time.Millisecond))
}

func TestTrickledBodyIsCutOffAndChangesNothing(t *testing.T) {
	f := newFixture(t, true)
	addr := startLimitedServer(t, f)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/credits HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"credits\":", f.token)
	start := time.Now()
	closed, reply := closedWithin(conn, 3*time.Second)
	if !closed {
		t.Fatal("a stalled body held the connection past 3s (ReadTimeout 500ms)")
	}
	if reply != "" && !strings.Contains(reply, "400 Bad Request") {
		t.Fatalf("a stalled body was answered with %q", reply)
	}
	if f.store.writes != 0 {
		t.Fatal("a stalled body changed the balance")
	}
	t.Logf("stalled-body connection closed after %v", time.Since(start).Round(time.Millisecond))
}

func TestOversizedHeadersAreRefused(t *testing.T) {
	f := newFixture(t, true)
	addr := startLimitedServer(t, f)
	req, _ := http.NewRequest("POST", "http://"+addr+"/api/credits", strings.NewReader(`{"credits":1}`))
	req.Header.Set("Authorization", "Bearer "+f.token)
	req.Header.Set("X-Padding", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("64 KiB of headers: %d, want 431", resp.StatusCode)
	}
	if f.store.writes != 0 {
		t.Fatal("a refused request changed the balance")
	}
}
