package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestServeWaitsForItsGoroutines: when serve returns, none of the goroutines it started
// (reloads, keep-alive, admin sync, HTTP servers, store sweepers) is still running. The
// keep-alive round is held inside a read from a runtime socket that never answers, so a
// serve that did not wait would return while that goroutine still runs.
func TestServeWaitsForItsGoroutines(t *testing.T) {
	socket, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer socket.Close()
	asked := make(chan net.Conn, 16)
	go func() {
		for {
			conn, err := socket.Accept()
			if err != nil {
				return
			}
			asked <- conn // never answered: the round ends at its deadline
		}
	}()
	defer func() {
		for {
			select {
			case conn := <-asked:
				conn.Close()
			default:
				return
			}
		}
	}()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "stickyseat.yaml")
	if err := os.WriteFile(cfg, []byte("pools:\n  - name: web\n    servers:\n      - {name: s1, quota: 1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := servingGoroutines()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"stickyseat", "serve", "--listen", "127.0.0.1:0", "--config", cfg, "--watch-config",
			"--haproxy-socket", socket.Addr().String(), "--keepalive-interval", "1s",
			"--metrics-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
			"--state-file", filepath.Join(dir, "seats.state"), "--state-interval", "1h"}, &bytes.Buffer{}, &logs)
	}()
	select {
	case conn := <-asked:
		asked <- conn // closed at the end
	case err := <-done:
		t.Fatalf("serve ended before its first keep-alive round: %v\n%s", err, logs.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("no keep-alive round within 10s:\n%s", logs.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve still running 10s after its context ended")
	}
	for id, stack := range servingGoroutines() {
		if _, ok := before[id]; !ok {
			t.Errorf("goroutine still running after serve returned:\n%s", stack)
		}
	}
}

// lockedBuffer is a bytes.Buffer the test may read while serve writes its log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// servingGoroutines returns, by header line, the stacks of goroutines running the agent's
// code, leaving out the test's own.
func servingGoroutines() map[string]string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "TestServeWaitsForItsGoroutines") {
			continue
		}
		if strings.Contains(g, "\nmain.") || strings.Contains(g, "github.com/stickyseat/stickyseat/") {
			header, _, _ := strings.Cut(g, "\n")
			out[header] = g
		}
	}
	return out
}
