package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/agent/spop"
	"github.com/stickyseat/stickyseat/agent/spop/spoptest"
	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/internal/ratelimit"
)

// logBuffer collects an agent's JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the logged lines at level whose message contains msg, decoded.
func (b *logBuffer) lines(level, msg string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(b.buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		if m["level"] == level && strings.Contains(m["message"].(string), msg) {
			out = append(out, m)
		}
	}
	return out
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// frozenClock is a clock for the agent's log limiters that moves only when told.
type frozenClock struct{ ns atomic.Int64 }

func newFrozenClock() *frozenClock {
	c := &frozenClock{}
	c.ns.Store(time.Unix(1000, 0).UnixNano())
	return c
}

func (c *frozenClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *frozenClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// freezeLogs makes the agent's log limiters read c.
func freezeLogs(c *frozenClock) func(*Agent) {
	return func(a *Agent) {
		for _, l := range []*ratelimit.Limiter{a.refusedLog, a.evictedLog, a.connLog, a.panicLog} {
			l.Now = c.now
		}
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSilentPeersAreClosedAtHelloTimeout: connections that send nothing, or only part of
// a HELLO, hold every slot; a newcomer closes the oldest of them to get in at once, the
// others are closed once the HELLO timeout passes, and a connection that did its HELLO and
// answered is not cut by them.
func TestSilentPeersAreClosedAtHelloTimeout(t *testing.T) {
	const hello = 300 * time.Millisecond
	a, addr, _ := startAgent(t, &fakeDecider{}, Options{HelloTimeout: hello, MaxConnections: 4})
	good := dial(t, addr) // did its HELLO and a NOTIFY: must outlive the silent ones
	if _, err := good.Notify(9, 1, msg(arg("key", spop.Str("alice")))); err != nil {
		t.Fatal(err)
	}

	var silent []net.Conn
	start := time.Now()
	for i := range 3 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if i == 0 {
			// A HELLO cut short: its length, then nothing.
			if _, err := conn.Write(frameLen(60)); err != nil {
				t.Fatal(err)
			}
		}
		silent = append(silent, conn)
		waitFor(t, 5*time.Second, "silent connection accepted", func() bool { return a.Stats().Open == i+2 })
	}
	// Every slot is taken: a newcomer gets in, the oldest silent connection is closed.
	c := dial(t, addr)
	if !closedWithin(silent[0], 2*time.Second) {
		t.Errorf("the oldest silent connection was not closed at once for a newcomer")
	}
	for i, conn := range silent[1:] {
		if !closedWithin(conn, hello+5*time.Second) {
			t.Fatalf("silent connection %d still open %s after it connected; HelloTimeout is %s", i+1, time.Since(start), hello)
		}
	}
	if took := time.Since(start); took < hello {
		t.Errorf("silent connections closed after %s; want no earlier than the HELLO timeout %s", took, hello)
	}
	st := a.Stats()
	if st.HelloTimeouts != 2 || st.EvictedConnections != 1 || st.RefusedConnections != 0 || st.BadFrames != 0 {
		t.Errorf("HelloTimeouts, EvictedConnections, RefusedConnections, BadFrames = %d, %d, %d, %d; want 2, 1, 0, 0",
			st.HelloTimeouts, st.EvictedConnections, st.RefusedConnections, st.BadFrames)
	}
	// The newcomer and the connection that did its HELLO before both answer.
	for i, cl := range []*spoptest.Client{good, c} {
		acts, err := cl.Notify(uint64(i+1), 1, msg(arg("key", spop.Str("alice"))))
		if err != nil || spoptest.Vars(acts)[VarStatus] != "new" {
			t.Errorf("client %d after the silent ones were closed: %v, %v; want status new", i, spoptest.Vars(acts), err)
		}
	}
}

// TestConnectionLogsAreRateLimited: a flood of refused and of bad connections logs one
// line of each kind per interval, and the next line says how many were held back.
func TestConnectionLogsAreRateLimited(t *testing.T) {
	var logs logBuffer
	clock := newFrozenClock()
	d := &fakeDecider{block: make(chan struct{})}
	a, addr, _ := serveAgent(t, d, Options{MaxConnections: 1, Logger: zerolog.New(&logs)}, freezeLogs(clock))
	holder := busyClient(t, addr, d) // takes the only slot, busy: newcomers are refused
	flood := func(n int, payload []byte) {
		for range n {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			if payload != nil {
				conn.Write(payload)
			}
			if !closedWithin(conn, 5*time.Second) {
				t.Fatal("flooding connection not closed")
			}
			conn.Close()
		}
	}
	flood(20, nil)
	waitFor(t, 5*time.Second, "20 refusals counted", func() bool { return a.Stats().RefusedConnections == 20 })
	if got := logs.lines("warn", "SPOP connection refused"); len(got) != 1 {
		t.Fatalf("%d refusal lines for 20 refused connections within one interval; want 1:\n%s", len(got), logs.String())
	}
	clock.advance(logInterval)
	flood(1, nil)
	waitFor(t, 5*time.Second, "21 refusals counted", func() bool { return a.Stats().RefusedConnections == 21 })
	got := logs.lines("warn", "SPOP connection refused")
	if len(got) != 2 || got[1]["suppressed"] != float64(19) {
		t.Fatalf("refusal lines after one interval: %v; want a second line with suppressed=19", got)
	}

	// Bad frames: free the slot, then flood with frames of length 0.
	close(d.block)
	holder.Close()
	waitFor(t, 5*time.Second, "slot freed", func() bool { return a.Stats().Open == 0 })
	for range 20 {
		flood(1, frameLen(0))
		waitFor(t, 5*time.Second, "slot freed", func() bool { return a.Stats().Open == 0 })
	}
	if st := a.Stats(); st.BadFrames != 20 {
		t.Fatalf("BadFrames = %d; want 20", st.BadFrames)
	}
	if got := logs.lines("warn", "bad SPOP frame"); len(got) != 1 {
		t.Fatalf("%d lines for 20 bad connections within one interval; want 1:\n%s", len(got), logs.String())
	}
}

// TestPanicLogsTextAndStack: a recovered panic with an error value logs its message and
// the stack where it happened, not an empty object.
func TestPanicLogsTextAndStack(t *testing.T) {
	var logs logBuffer
	_, addr, _ := serveAgent(t, &fakeDecider{}, Options{Logger: zerolog.New(&logs)}, nil)
	c := dial(t, addr)
	acts, err := c.Notify(1, 1, msg(arg("key", spop.Str("boom-error"))))
	if err != nil || spoptest.Vars(acts)[VarStatus] != "error" {
		t.Fatalf("Notify: %v, %v; want status error", spoptest.Vars(acts), err)
	}
	got := logs.lines("error", "handler panicked")
	if len(got) != 1 {
		t.Fatalf("%d panic lines; want 1:\n%s", len(got), logs.String())
	}
	if p, _ := got[0]["panic"].(string); p != "decider failed with an error value" {
		t.Errorf(`"panic" = %#v; want the error's text`, got[0]["panic"])
	}
	if s, _ := got[0]["stack"].(string); !strings.Contains(s, "fakeDecider") {
		t.Errorf(`"stack" = %q; want the stack through the decider that panicked`, s)
	}
}

// TestInvalidIsCountedInTheNamedPool: a message refused before any decision is counted in
// the pool it named, and in no pool (empty, which metrics call unknown) when that pool
// does not exist.
func TestInvalidIsCountedInTheNamedPool(t *testing.T) {
	type obs struct {
		pool   string
		status assign.Status
	}
	var mu sync.Mutex
	var seen []obs
	_, addr, _ := startAgent(t, &fakeDecider{}, Options{OnDecision: func(d assign.Decision, _ time.Duration) {
		mu.Lock()
		seen = append(seen, obs{d.Pool, d.Status})
		mu.Unlock()
	}})
	c := dial(t, addr)
	tests := []struct {
		name string
		msg  spop.Message
		pool string
	}{
		{"bad key type before the pool", msg(arg("key", spop.Bool(true)), arg("pool", spop.Str("web"))), "web"},
		{"bad key type after the pool", msg(arg("pool", spop.Str("api")), arg("key", spop.Bool(true))), "api"},
		{"bad key type, unknown pool", msg(arg("key", spop.Bool(true)), arg("pool", spop.Str("nope"))), ""},
		{"no key", msg(arg("pool", spop.Str("web"))), "web"},
	}
	for i, tt := range tests {
		acts, err := c.Notify(uint64(i+1), 1, tt.msg)
		if err != nil || spoptest.Vars(acts)[VarStatus] != "invalid" {
			t.Fatalf("%s: %v, %v; want status invalid", tt.name, spoptest.Vars(acts), err)
		}
		mu.Lock()
		last := seen[len(seen)-1]
		mu.Unlock()
		if last != (obs{tt.pool, assign.StatusInvalid}) {
			t.Errorf("%s: OnDecision(%q, %s); want (%q, invalid)", tt.name, last.pool, last.status, tt.pool)
		}
	}
}

// TestPeerResetBetweenFramesIsANormalClose: HAProxy 3.1 and later close idle SPOP
// connections with a reset; after the last answer that is logged at debug, not as a warning.
func TestPeerResetBetweenFramesIsANormalClose(t *testing.T) {
	var logs logBuffer
	a, addr, _ := serveAgent(t, &fakeDecider{}, Options{Logger: zerolog.New(&logs).Level(zerolog.DebugLevel)}, nil)
	var conns []net.Conn
	for i := range 2 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		c := spoptest.NewClient(conn)
		if _, err := c.Hello(false); err != nil {
			t.Fatal(err)
		}
		if i == 0 { // the other resets right after its HELLO
			if _, err := c.Notify(1, 1, msg(arg("key", spop.Str("alice")))); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, conn := range conns {
		conn.(*net.TCPConn).SetLinger(0) // close sends RST
		conn.Close()
	}
	waitFor(t, 5*time.Second, "connections closed", func() bool { return a.Stats().Open == 0 })
	waitFor(t, 5*time.Second, "close logged", func() bool { return len(logs.lines("debug", "SPOP connection closed")) == 2 })
	for _, l := range logs.lines("debug", "SPOP connection closed") {
		if l["peer_reset"] != true {
			t.Errorf("close line %v; want peer_reset=true", l)
		}
	}
	if w := logs.lines("warn", ""); len(w) != 0 {
		t.Errorf("a reset between frames logged warnings: %v", w)
	}
}

// countingConn records every write to the socket.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, append([]byte(nil), p...))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

type countingListener struct {
	net.Listener
	conns chan *countingConn
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &countingConn{Conn: c}
	l.conns <- cc
	return cc, nil
}

// TestAgentHelloIsOneWrite: HAProxy 3.2 and later reset a connection whose AGENT-HELLO
// arrives in pieces: it must reach the socket in one write.
func TestAgentHelloIsOneWrite(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := countingListener{Listener: ln, conns: make(chan *countingConn, 4)}
	a := New(&fakeDecider{}, Options{Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, cl) }()
	defer func() { cancel(); <-done }()
	for _, hc := range []bool{false, true} {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := spoptest.NewClient(conn).Hello(hc); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		srv := <-cl.conns
		srv.mu.Lock()
		writes := srv.writes
		srv.mu.Unlock()
		if len(writes) == 0 {
			t.Fatalf("healthcheck=%v: no write seen", hc)
		}
		first := writes[0]
		if len(first) < 5 || first[4] != spop.TypeAgentHello || int(uint32(first[0])<<24|uint32(first[1])<<16|uint32(first[2])<<8|uint32(first[3]))+4 != len(first) {
			t.Errorf("healthcheck=%v: first write is %d bytes (% x...); want the whole AGENT-HELLO frame in one write", hc, len(first), first[:min(len(first), 8)])
		}
	}
}

// TestTwentyStreamsInFlightOnOneConnection: HAProxy 3.1 and later put up to 20 streams in
// flight on one SPOP connection (before 3.1, max-waiting-frames, 20 by default). With the
// default limits all 20 reach the decider at once: none waits behind another.
func TestTwentyStreamsInFlightOnOneConnection(t *testing.T) {
	const streams = 20
	d := &fakeDecider{block: make(chan struct{})}
	_, addr, _ := startAgent(t, d, Options{})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := spoptest.NewClient(conn)
	if _, err := c.Hello(false); err != nil {
		t.Fatalf("Hello: %v", err)
	}
	var frames []byte
	for i := range streams {
		frames = spop.AppendNotify(frames, uint64(i+1), 1, msg(arg("key", spop.Str("slow"))))
	}
	if _, err := conn.Write(frames); err != nil {
		t.Fatal(err)
	}
	released := false
	defer func() {
		if !released {
			close(d.block)
		}
	}()
	waitFor(t, 5*time.Second, "20 pipelined streams at the decider at once", func() bool { return len(d.requests()) == streams })
	close(d.block)
	released = true
	for range streams {
		h, _, err := c.ReadFrame()
		if err != nil || h.Type != spop.TypeAck {
			t.Fatalf("ReadFrame: type %d, %v; want an ACK", h.Type, err)
		}
	}
}
