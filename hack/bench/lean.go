package main

// A lean HTTP/1.1 load generator: each worker keeps one connection and writes pre-built
// request bytes, reading just the status line, Content-Length and body back. It does far
// less per request than net/http's client, so that the reference it measures (a bare
// handler) is not capped by the generator: its own ceiling, against a server that answers
// without parsing, is measured and reported beside every ratio.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
)

// rawRequest builds the bytes of one request.
func rawRequest(method, path, token, body string, header ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: bench\r\n", method, path)
	if token != "" {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", header[i], header[i+1])
	}
	if body != "" || method == "POST" {
		fmt.Fprintf(&b, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	return b.Bytes()
}

// leanRun sends n requests, reqs[i%len(reqs)], over concurrency kept-alive connections to
// addr and summarizes them; ok decides which statuses count as success. A request's time
// includes dialling its connection when it is the first on it.
func leanRun(name, addr string, reqs [][]byte, n, concurrency int, ok func(int) bool) Summary {
	return leanRunCtx(context.Background(), name, addr, reqs, n, concurrency, ok)
}

// leanRunCtx is leanRun that sends no more requests once ctx ends; those sent count.
func leanRunCtx(ctx context.Context, name, addr string, reqs [][]byte, n, concurrency int, ok func(int) bool) Summary {
	return doPerWorker(ctx, name, n, concurrency, func() (func(context.Context, int) int, func()) {
		c := &leanConn{addr: addr}
		return func(_ context.Context, i int) int { return c.send(reqs[i%len(reqs)]) }, c.close
	}, ok)
}

// leanConn is one worker's connection, dialled when first needed and again after an error.
type leanConn struct {
	addr string
	conn net.Conn
	r    *bufio.Reader
}

// send sends req and returns the answer's status, -1 for an error.
func (c *leanConn) send(req []byte) int {
	if c.conn == nil {
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			return -1
		}
		c.conn, c.r = conn, bufio.NewReaderSize(conn, 16<<10)
	}
	status, err := roundTrip(c.conn, c.r, req)
	if err != nil {
		c.close()
		return -1
	}
	return status
}

func (c *leanConn) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// roundTrip writes req and reads one response: its status, and its body discarded.
func roundTrip(conn net.Conn, r *bufio.Reader, req []byte) (int, error) {
	if _, err := conn.Write(req); err != nil {
		return 0, err
	}
	line, err := r.ReadSlice('\n')
	if err != nil || len(line) < 12 {
		return 0, fmt.Errorf("status line: %v", err)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, err
	}
	length := 0
	for {
		h, err := r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(h) <= 2 {
			break
		}
		if len(h) > 16 && bytes.EqualFold(h[:15], []byte("Content-Length:")) {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(h[15:])))
		}
	}
	_, err = r.Discard(length)
	return status, err
}

// serveCanned answers every request on addr with a fixed response, without parsing more
// than the request's end: the load generator's own ceiling is measured against it.
func serveCanned(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"credits\":5}")
	for {
		conn, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer conn.Close()
			r := bufio.NewReaderSize(conn, 16<<10)
			for {
				// Requests here have no body: a request ends at its blank line.
				for {
					line, err := r.ReadSlice('\n')
					if err != nil {
						if err != io.EOF {
							return
						}
						return
					}
					if len(line) <= 2 {
						break
					}
				}
				if _, err := conn.Write(resp); err != nil {
					return
				}
			}
		}()
	}
}
