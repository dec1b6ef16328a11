package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/store/storetest"
)

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// accepted reports whether ln has a connection waiting. A dial that returned has finished its
// TCP handshake, so its connection is already queued: the short deadline only bounds the wait.
func accepted(t *testing.T, ln net.Listener) bool {
	t.Helper()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(50 * time.Millisecond))
	c, err := ln.Accept()
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// TestRefusalHeld: a refused dial is answered with a connection that fails on use, with the
// dial's error; for refusalHold the address is not dialed again; after it, it is.
func TestRefusalHeld(t *testing.T) {
	clock := storetest.NewClock(testStart)
	d := newRefusalDialer(func() *tls.Config { return nil })
	d.now = clock.Now
	addr := closedPort(t)
	ctx := context.Background()

	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("dial %s (closed): %v; want a connection that fails on use", addr, err)
	}
	_, werr := c.Write([]byte("PING\r\n"))
	if werr == nil || !errors.Is(werr, syscall.ECONNREFUSED) || !strings.Contains(werr.Error(), "connection refused") {
		t.Errorf("Write on a refused connection = %v; want the dial's connection refused", werr)
	}
	var opErr *net.OpError
	if errors.As(werr, &opErr) {
		t.Errorf("Write error wraps a *net.OpError (%v): go-redis would retry it until the deadline", opErr)
	}
	if sc, ok := c.(syscall.Conn); !ok {
		t.Errorf("a refused connection is no syscall.Conn: go-redis's idle check would take it for healthy")
	} else if _, err := sc.SyscallConn(); err == nil {
		t.Errorf("SyscallConn on a refused connection = nil error; want one, so that go-redis's idle check drops it")
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	defer ln.Close()
	clock.Advance(refusalHold / 2)
	if c, err := d.DialContext(ctx, "tcp", addr); err != nil || !isRefused(c) {
		t.Errorf("dial within the hold = %v, %v; want the remembered refusal", c, err)
	}
	if accepted(t, ln) {
		t.Errorf("a dial within the hold reached the listener; want none")
	}
	clock.Advance(refusalHold)
	c, err = d.DialContext(ctx, "tcp", addr)
	if err != nil || isRefused(c) {
		t.Fatalf("dial after the hold = %v, %v; want a connection", c, err)
	}
	c.Close()
	if !accepted(t, ln) {
		t.Errorf("the dial after the hold did not reach the listener")
	}
	if len(d.refused) != 0 {
		t.Errorf("refusals remembered after a successful dial: %v; want none", d.refused)
	}
}

func isRefused(c net.Conn) bool {
	_, ok := c.(refusedConn)
	return ok
}

// TestTLSDialHonoursDeadline: a TLS dial to a server that accepts and never answers ends with
// its context. (tls.DialWithDialer, go-redis's own TLS dial, ignores the context: with it a
// silent peer held each dial, and its pool turn, until the kernel gave up.)
func TestTLSDialHonoursDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			peer <- c
		}
	}()
	d := newRefusalDialer(func() *tls.Config { return &tls.Config{ServerName: "redis.test", MinVersion: tls.VersionTLS12} })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
		if c != nil {
			c.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("TLS dial to a silent server = %v; want the context's deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("TLS dial to a silent server still running 10s after its 200ms deadline")
	}
	// The dialer closed its half: the silent server reads EOF.
	select {
	case c := <-peer:
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Errorf("the abandoned TLS connection is still open 10s later")
				}
				break
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the TLS dial never reached the server")
	}
}
