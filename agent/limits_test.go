package agent

import (
	"net"
	"runtime"
	"testing"
	"time"

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

func TestMaxConnections(t *testing.T) {
	a, addr, _ := startAgent(t, &fakeDecider{}, Options{MaxConnections: 2})
	dial(t, addr)
	dial(t, addr)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if !closedWithin(conn, 5*time.Second) {
		t.Errorf("third connection still open beyond MaxConnections 2")
	}
	if got := a.Stats().RefusedConnections; got != 1 {
		t.Errorf("Stats().RefusedConnections = %d; want 1", got)
	}
}
