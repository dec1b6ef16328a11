package agent

import (
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/agent/spop"
	"github.com/stickyseat/stickyseat/agent/spop/spoptest"
)

// TestPeerThatNeverReadsIsCut: a peer sends NOTIFYs and never reads the ACKs. The agent
// must not start a goroutine per frame without bound (the library would), and must close
// the connection once an ACK cannot be written, while other connections keep working.
func TestPeerThatNeverReadsIsCut(t *testing.T) {
	a, addr, _ := startAgent(t, &fakeDecider{}, Options{MaxInFlight: 8, WriteTimeout: 300 * time.Millisecond})
	good := dial(t, addr)

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4096)
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	c := spoptest.NewClient(conn)
	if _, err := c.Hello(false); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	frame := spop.AppendNotify(nil, 1, 1, msg(arg("key", spop.Str("flood"))))
	var batch []byte
	for range 1000 {
		batch = append(batch, frame...)
	}
	// The kernel holds what the agent has not read: up to net.ipv4.tcp_rmem's max in the
	// agent's receive buffer plus the test's send buffer (32 MiB + 4 MiB on Debian). Send
	// well beyond that, so that only an agent that stops reading makes the writes fail.
	const flood = 96 << 20
	limit := flood / len(frame)
	sent := 0
	peak := 0
	for sent < limit {
		conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := conn.Write(batch); err != nil {
			break // the agent stopped reading, then closed: what we want
		}
		sent += 1000
		peak = max(peak, runtime.NumGoroutine())
	}
	if sent >= limit {
		t.Errorf("the agent took %d MiB of unanswered NOTIFYs (%d frames) from a peer that never reads", flood>>20, sent)
	}
	if grew := peak - before; grew > 100 {
		t.Errorf("goroutines grew by %d while flooded; want at most ~MaxInFlight", grew)
	}
	// The flooding connection is closed: reading ends (after what was buffered) with an error.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64<<10)
	for {
		if _, err := conn.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("flooding connection still open 10s later")
			}
			break
		}
	}
	acts, err := good.Notify(1, 1, msg(arg("key", spop.Str("alice"))))
	if err != nil || spoptest.Vars(acts)[VarServer] != "srv-alice-" {
		t.Errorf("healthy connection after the flood: %v, %v", spoptest.Vars(acts), err)
	}
	_ = a
}

func TestIdleAndSlowFramesAreClosed(t *testing.T) {
	_, addr, _ := startAgent(t, &fakeDecider{}, Options{IdleTimeout: 200 * time.Millisecond, HelloTimeout: 200 * time.Millisecond, FrameTimeout: 200 * time.Millisecond})
	t.Run("idle after hello", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := spoptest.NewClient(conn).Hello(false); err != nil {
			t.Fatal(err)
		}
		if !closedWithin(conn, 5*time.Second) {
			t.Errorf("idle connection still open after 5s; IdleTimeout is 200ms")
		}
	})
	t.Run("frame never finished", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := spoptest.NewClient(conn).Hello(false); err != nil {
			t.Fatal(err)
		}
		conn.Write(append(frameLen(1000), spop.TypeNotify, 0, 0, 0, 1))
		if !closedWithin(conn, 5*time.Second) {
			t.Errorf("connection with a frame begun and never finished still open after 5s; FrameTimeout is 200ms")
		}
	})
	t.Run("silent before hello", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if !closedWithin(conn, 5*time.Second) {
			t.Errorf("silent connection still open after 5s; HelloTimeout is 200ms")
		}
	})
}

// busyClient connects, says HELLO and sends a NOTIFY for key "slow", which d holds until
// its block channel is closed: the connection has a message in flight.
func busyClient(t *testing.T, addr string, d *fakeDecider) *spoptest.Client {
	t.Helper()
	c := dial(t, addr)
	asked := len(d.requests())
	go c.Notify(1, 1, msg(arg("key", spop.Str("slow")))) // answered when the test ends
	waitFor(t, 5*time.Second, "the slow message reaches the decider", func() bool { return len(d.requests()) > asked })
	return c
}

// helloConn connects and says HELLO, and returns the raw connection too.
func helloConn(t *testing.T, addr string) (*spoptest.Client, net.Conn) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := spoptest.NewClient(conn)
	t.Cleanup(func() { c.Close() })
	if _, err := c.Hello(false); err != nil {
		t.Fatalf("Hello: %v", err)
	}
	return c, conn
}

// idleConns counts the agent's connections idle now (see guardConn.idleFor).
func idleConns(a *Agent) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for g := range a.conns {
		if _, ok := g.idleFor(time.Now()); ok {
			n++
		}
	}
	return n
}

// stillOpen reports whether nothing arrives on conn, not even its end, within d; a
// connection with no answer due must get nothing.
func stillOpen(conn net.Conn, d time.Duration) bool {
	conn.SetReadDeadline(time.Now().Add(d))
	_, err := conn.Read(make([]byte, 1))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestMaxConnectionsClosesTheIdlest: at the limit a newcomer is let in and the connection
// idle the longest is closed, one that never sent a NOTIFY before any other; a connection
// with a message in flight is never closed; when every connection is busy the newcomer is
// refused.
func TestMaxConnectionsClosesTheIdlest(t *testing.T) {
	d := &fakeDecider{block: make(chan struct{})}
	a, addr, _ := startAgent(t, d, Options{MaxConnections: 3})
	t.Cleanup(func() { close(d.block) }) // before the agent's shutdown, which waits for it
	busyClient(t, addr, d)
	used, usedConn := helloConn(t, addr)
	if _, err := used.Notify(1, 1, msg(arg("key", spop.Str("alice")))); err != nil {
		t.Fatal(err)
	}
	_, silent := helloConn(t, addr) // HELLO only, and the newest: still the first to go
	// A reader back at a frame boundary after answering is idle; wait for that moment.
	waitFor(t, 5*time.Second, "3 connections open, 2 idle", func() bool { return a.Stats().Open == 3 && idleConns(a) == 2 })

	first, firstConn := helloConn(t, addr)
	if acts, err := first.Notify(1, 1, msg(arg("key", spop.Str("bob")))); err != nil || spoptest.Vars(acts)[VarStatus] != "new" {
		t.Fatalf("newcomer at the limit: %v, %v; want status new", spoptest.Vars(acts), err)
	}
	if stillOpen(silent, 5*time.Second) {
		t.Fatal("the connection that never sent a NOTIFY was not closed for the newcomer")
	}
	// Now every idle connection has sent a NOTIFY: the one idle the longest goes.
	waitFor(t, 5*time.Second, "2 idle connections", func() bool { return idleConns(a) == 2 })
	second := dial(t, addr)
	if acts, err := second.Notify(1, 1, msg(arg("key", spop.Str("carol")))); err != nil || spoptest.Vars(acts)[VarStatus] != "new" {
		t.Fatalf("second newcomer at the limit: %v, %v; want status new", spoptest.Vars(acts), err)
	}
	if stillOpen(usedConn, 5*time.Second) {
		t.Fatal("the connection idle the longest was not closed for the second newcomer")
	}
	if !stillOpen(firstConn, 200*time.Millisecond) {
		t.Errorf("the first newcomer's connection was closed; want open (idle for less long than the closed one)")
	}
	if acts, err := first.Notify(2, 1, msg(arg("key", spop.Str("bob")))); err != nil || spoptest.Vars(acts)[VarStatus] != "new" {
		t.Errorf("first newcomer after the second came in: %v, %v; want an answer", spoptest.Vars(acts), err)
	}
	if st := a.Stats(); st.EvictedConnections != 2 || st.RefusedConnections != 0 || st.Open != 3 {
		t.Errorf("EvictedConnections, RefusedConnections, Open = %d, %d, %d; want 2, 0, 3", st.EvictedConnections, st.RefusedConnections, st.Open)
	}
}

func TestMaxConnectionsAllBusyRefuses(t *testing.T) {
	d := &fakeDecider{block: make(chan struct{})}
	a, addr, _ := startAgent(t, d, Options{MaxConnections: 2})
	t.Cleanup(func() { close(d.block) }) // before the agent's shutdown, which waits for it
	busyClient(t, addr, d)
	busyClient(t, addr, d)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if !closedWithin(conn, 5*time.Second) {
		t.Errorf("third connection still open beyond MaxConnections 2 with both connections busy")
	}
	if st := a.Stats(); st.RefusedConnections != 1 || st.EvictedConnections != 0 {
		t.Errorf("RefusedConnections, EvictedConnections = %d, %d; want 1, 0", st.RefusedConnections, st.EvictedConnections)
	}
}

// failingListener's Accept fails with err its first n calls, then accepts.
type failingListener struct {
	net.Listener
	mu  sync.Mutex
	n   int
	err error
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.n > 0 {
		l.n--
		l.mu.Unlock()
		return nil, l.err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// TestAcceptOutOfFilesIsRetried: accept failing with EMFILE (the process is out of file
// descriptors) or ENFILE is retried after a wait, counted, and the agent then serves; any
// other accept error still ends Serve.
func TestAcceptOutOfFilesIsRetried(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE} {
		t.Run(errno.Error(), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			fl := &failingListener{Listener: ln, n: 4, err: &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}}
			a := New(&fakeDecider{}, Options{Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- a.Serve(ctx, fl) }()
			defer func() {
				cancel()
				if err := <-served; err != nil {
					t.Errorf("Serve after cancel = %v; want nil", err)
				}
			}()
			c := dial(t, ln.Addr().String())
			if acts, err := c.Notify(1, 1, msg(arg("key", spop.Str("alice")))); err != nil || spoptest.Vars(acts)[VarStatus] != "new" {
				t.Fatalf("after %d failed accepts: %v, %v; want status new", 4, spoptest.Vars(acts), err)
			}
			if got := a.Stats().AcceptErrors; got != 4 {
				t.Errorf("Stats().AcceptErrors = %d; want 4", got)
			}
		})
	}
	t.Run("other errors end Serve", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		fl := &failingListener{Listener: ln, n: 1, err: errors.New("listener broken")}
		a := New(&fakeDecider{}, Options{})
		if err := a.Serve(context.Background(), fl); err == nil || err.Error() != "listener broken" {
			t.Errorf("Serve = %v; want the accept error", err)
		}
	})
}
