package agent

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/stickyseat/stickyseat/agent/spop"
)

// maxHelloLen bounds the first frame, read whole before the library sees it. HELLO frames
// are a few hundred bytes.
const maxHelloLen = 4096

// errFrame is the cause of every connection the guard closes for what it sent.
var errFrame = errors.New("bad SPOP frame")

// errHelloTimeout is the cause of a connection closed for not sending its HAPROXY-HELLO in
// time: a peer that connects and stays silent would otherwise hold one of the agent's
// connection slots for the whole idle timeout, and enough of them lock HAProxy out.
var errHelloTimeout = errors.New("no HAPROXY-HELLO in time")

// guardConn sits between a peer and negasus/haproxy-spoe-go, which trusts the 4-byte frame
// length and the types of HELLO items (negasus.go, assumptions 3 and 4). It follows frame
// boundaries in the byte stream, refuses a length shorter than a frame header or longer
// than the negotiated max-frame-size, and reads the HELLO and DISCONNECT frames whole to
// check their items (and learn the size from the HELLO). Writes are combined (see Write).
type guardConn struct {
	net.Conn
	r *bufio.Reader

	limit     uint32 // hard cap on max-frame-size
	maxFrame  uint32 // negotiated; 0 before HELLO
	remaining uint32 // body bytes of the current frame not yet delivered
	pending   []byte // bytes read ahead (header, or the whole HELLO) not yet delivered
	hdr       [4]byte

	closing  atomic.Bool
	extended bool      // shutdown grace already granted for the current frame
	dlKind   int       // the read deadline in force (reader goroutine only)
	dlAt     time.Time // when it expires
	limits   guardLimits
	stats    *counters // the agent's: bad frames and HELLO timeouts are counted there
	// peerReset: the peer reset the connection at a frame boundary with no message in
	// flight, which Read reported as a normal end (reader goroutine only).
	peerReset bool

	// idleSince is when the connection began waiting for a frame with none begun (Unix
	// nanoseconds; the accept time until the HELLO is whole), 0 while a frame is being
	// read. notified: a NOTIFY went through. The listener reads both to pick the
	// connection to close when every slot is taken (see idleFor).
	idleSince atomic.Int64
	notified  atomic.Bool

	// inFlight holds one token per NOTIFY handed to the library and not yet answered: the
	// library starts a goroutine per NOTIFY and answers each with one ACK (negasus.go,
	// assumption 7), so a peer that sends without reading would otherwise pile up
	// goroutines without bound.
	inFlight chan struct{}
	done     chan struct{} // closed when the connection is closed
	doneOnce sync.Once

	// Write combining (see Write), guarded by wmu.
	wmu          sync.Mutex
	wbuf, wspare []byte
	wacks        int
	flushing     bool
	werr         error
}

// guardLimits bound what one peer can make the agent hold.
type guardLimits struct {
	maxFrame    uint32        // hard cap on max-frame-size
	hello       time.Duration // longest wait for the whole HAPROXY-HELLO, from accept
	grace       time.Duration // a frame begun before shutdown may take this long to arrive
	idle        time.Duration // longest wait for the next frame
	frame       time.Duration // longest wait for the rest of a frame once its length is read
	write       time.Duration // longest wait to write one answer
	maxInFlight int           // NOTIFY frames being answered at once
}

// newGuardConn guards c, which must just have been accepted: the HELLO deadline starts now.
func newGuardConn(c net.Conn, l guardLimits, stats *counters) *guardConn {
	g := &guardConn{Conn: c, r: bufio.NewReaderSize(c, 16<<10), limit: l.maxFrame, limits: l, stats: stats,
		inFlight: make(chan struct{}, l.maxInFlight), done: make(chan struct{})}
	// One deadline covers the whole HAPROXY-HELLO, however it is cut up: HAProxy sends it
	// as soon as it connects (its own "timeout hello" on 2.6-3.0 is a few seconds).
	g.readDeadline(deadlineHello, l.hello)
	g.idleSince.Store(time.Now().UnixNano())
	return g
}

// idleFor reports how long the connection has been idle at now, and false when it is not
// idle: a frame is being read or a NOTIFY is being answered (its in-flight token is held
// until its ACK is written). Ending an idle connection (shutdown) loses nothing: HAProxy
// opens another when it needs one. A connection still in its HELLO is idle from its
// accept, however much of the HELLO came; its AGENT-HELLO, if being written, still goes
// out, as shutdown only ends the reading.
func (g *guardConn) idleFor(now time.Time) (time.Duration, bool) {
	since := g.idleSince.Load()
	if since == 0 || len(g.inFlight) > 0 || g.closing.Load() {
		return 0, false
	}
	return now.Sub(time.Unix(0, since)), true
}

// Write sends one frame (the library writes each frame in one call: negasus.go,
// assumption 6); it is safe for concurrent use, as the library's writers need. A frame always
// reaches the socket in one write(2), never cut: HAProxy 3.2 and later reset a connection
// whose AGENT-HELLO arrives in pieces, and with TCP_NODELAY (Go's default) one write of a
// small frame is one segment. Frames are combined:
// the first writer becomes the flusher and writes, in one write(2) under a deadline, every
// frame the connection's other goroutines queued meanwhile; they return at once. Under
// pipelining this saves a system call per answer, the largest cost of the library. An
// ACK's in-flight token returns when its bytes are written (or dropped with the
// connection), so a peer that does not read still stops the reading of its frames. A
// failed write closes the connection, so writers stuck behind such a peer are released.
func (g *guardConn) Write(p []byte) (int, error) {
	acks := 0
	if isAck(p) {
		acks = 1
	}
	g.wmu.Lock()
	if g.werr != nil {
		err := g.werr
		g.wmu.Unlock()
		g.release(acks)
		return 0, err
	}
	g.wbuf = append(g.wbuf, p...)
	g.wacks += acks
	if g.flushing {
		g.wmu.Unlock()
		return len(p), nil
	}
	g.flushing = true
	// Let the connection's other handlers that are ready to run queue their answers
	// first: on few cores they would otherwise each find the flush done and write alone.
	g.wmu.Unlock()
	runtime.Gosched()
	g.wmu.Lock()
	for len(g.wbuf) > 0 {
		buf, n := g.wbuf, g.wacks
		g.wbuf, g.wacks = g.wspare[:0], 0
		g.wmu.Unlock()
		_ = g.Conn.SetWriteDeadline(time.Now().Add(g.limits.write)) // an error means closed: Write reports it
		_, err := g.Conn.Write(buf)
		g.release(n)
		g.wmu.Lock()
		g.wspare = buf[:0]
		if err != nil {
			g.werr = err
			g.release(g.wacks)
			g.wbuf, g.wacks, g.flushing = nil, 0, false
			g.wmu.Unlock()
			g.Close()
			return 0, err
		}
	}
	g.flushing = false
	g.wmu.Unlock()
	return len(p), nil
}

// release returns n in-flight tokens.
func (g *guardConn) release(n int) {
	for ; n > 0; n-- {
		select {
		case <-g.inFlight:
		default:
		}
	}
}

// Close closes the connection once.
func (g *guardConn) Close() error {
	var err error
	g.doneOnce.Do(func() {
		close(g.done)
		err = g.Conn.Close()
	})
	return err
}

// Read delivers the peer's bytes, frame by frame, to the library.
func (g *guardConn) Read(p []byte) (int, error) {
	if len(g.pending) > 0 {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	if g.remaining > 0 {
		if uint32(len(p)) > g.remaining {
			p = p[:g.remaining]
		}
		n, err := g.r.Read(p)
		g.remaining -= uint32(n)
		if err != nil && g.retryOnShutdown(err) {
			err = nil
		}
		return n, err
	}
	n, err := g.nextFrame(p)
	switch {
	case errors.Is(err, errFrame):
		g.stats.badFrames.Add(1)
	case errors.Is(err, errHelloTimeout):
		g.stats.helloTimeouts.Add(1)
	}
	return n, err
}

// nextFrame reads and checks the next frame's length at a frame boundary.
func (g *guardConn) nextFrame(p []byte) (int, error) {
	if g.closing.Load() {
		return 0, io.EOF
	}
	g.extended = false
	hello := g.maxFrame == 0 // before the HELLO its own deadline, set at accept, stays
	if g.r.Buffered() < 4 && !hello {
		g.idleSince.Store(time.Now().UnixNano())
		g.readDeadline(deadlineIdle, g.limits.idle)
	}
	if g.closing.Load() {
		// shutdown may have set its deadline just before ours replaced it
		return 0, io.EOF
	}
	got, err := io.ReadFull(g.r, g.hdr[:])
	if !hello {
		g.idleSince.Store(0)
	}
	if err != nil {
		if g.closing.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, io.EOF
		}
		if hello && errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, fmt.Errorf("%w: none within %s", errHelloTimeout, g.limits.hello)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, fmt.Errorf("idle for %s: %w", g.limits.idle, err)
		}
		// HAProxy 3.1 and later close an idle SPOP connection with a reset (RST) rather
		// than a FIN. Between frames, with every answer written, nothing is lost: that is
		// a normal end, not an error to log.
		if got == 0 && !hello && errors.Is(err, syscall.ECONNRESET) && len(g.inFlight) == 0 {
			g.peerReset = true
			return 0, io.EOF
		}
		return 0, err
	}
	n := binary.BigEndian.Uint32(g.hdr[:])
	if n < minFrameLen {
		return 0, fmt.Errorf("%w: length %d is shorter than a frame header", errFrame, n)
	}
	if !g.closing.Load() && uint32(g.r.Buffered()) < n && !hello {
		g.readDeadline(deadlineFrame, g.limits.frame)
	}
	if g.maxFrame == 0 {
		return g.readHello(p, n)
	}
	if n > g.maxFrame {
		return 0, fmt.Errorf("%w: length %d exceeds the negotiated max-frame-size %d", errFrame, n, g.maxFrame)
	}
	typ, err := g.r.Peek(1)
	if err != nil {
		return 0, err
	}
	if typ[0] == spop.TypeHAProxyDisconnect {
		return g.readItemsFrame(p, n)
	}
	if takesToken(typ[0]) {
		select {
		case g.inFlight <- struct{}{}:
		case <-g.done:
			return 0, net.ErrClosed
		}
		g.notified.Store(true)
	}
	g.remaining = n
	g.pending = g.hdr[:]
	return g.Read(p)
}

// readHello reads the first frame whole, checks it is a HAPROXY-HELLO whose items the
// library can take, and learns the max-frame-size it will negotiate.
func (g *guardConn) readHello(p []byte, n uint32) (int, error) {
	if n > maxHelloLen {
		return 0, fmt.Errorf("%w: first frame of %d bytes is too long for a HAPROXY-HELLO", errFrame, n)
	}
	frame, err := g.readWhole(n)
	if err != nil {
		if !g.closing.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, fmt.Errorf("%w: not whole within %s", errHelloTimeout, g.limits.hello)
		}
		return 0, err
	}
	h, kvs, err := readItems(frame)
	if err != nil {
		return 0, err
	}
	if h.Type != spop.TypeHAProxyHello {
		return 0, fmt.Errorf("%w: first frame has type %d, want HAPROXY-HELLO", errFrame, h.Type)
	}
	mfs, ok := spop.ItemUint(kvs, "max-frame-size")
	if !ok || mfs < minFrameLen {
		return 0, fmt.Errorf("%w: HAPROXY-HELLO without a usable max-frame-size", errFrame)
	}
	if mfs > uint64(g.limit) {
		return 0, fmt.Errorf("%w: HAProxy offers max-frame-size %d, above the agent's limit %d (raise --max-frame-size)", errFrame, mfs, g.limit)
	}
	g.maxFrame = negotiatedFrameSize(uint32(mfs))
	g.pending = frame
	return g.Read(p)
}

// readItemsFrame reads a HAPROXY-DISCONNECT whole and lets it through if the library can
// take its items.
func (g *guardConn) readItemsFrame(p []byte, n uint32) (int, error) {
	frame, err := g.readWhole(n)
	if err != nil {
		return 0, err
	}
	if _, _, err := readItems(frame); err != nil {
		return 0, err
	}
	g.pending = frame
	return g.Read(p)
}

// readWhole reads the frame of length n whose length bytes are in g.hdr, and returns it
// with them.
func (g *guardConn) readWhole(n uint32) ([]byte, error) {
	frame := make([]byte, 4+n)
	copy(frame, g.hdr[:])
	if _, err := io.ReadFull(g.r, frame[4:]); err != nil {
		return nil, err
	}
	return frame, nil
}

// readItems decodes a HELLO or DISCONNECT frame (with its length bytes) and checks its
// items against the types the library asserts.
func readItems(frame []byte) (spop.Header, []spop.KV, error) {
	h, payload, err := spop.ReadHeader(frame[4:])
	if err != nil {
		return h, nil, fmt.Errorf("%w: %w", errFrame, err)
	}
	kvs, err := spop.ReadKVs(payload)
	if err != nil {
		return h, nil, fmt.Errorf("%w: frame type %d: %w", errFrame, h.Type, err)
	}
	if err := checkItems(kvs); err != nil {
		return h, nil, fmt.Errorf("%w: frame type %d: %w", errFrame, h.Type, err)
	}
	return h, kvs, nil
}

// Kinds of read deadline in force.
const (
	deadlineNone = iota
	deadlineIdle
	deadlineFrame
	deadlineHello
)

// readDeadline makes sure a read that may block waits at most d: for the next frame (idle)
// or for the rest of one (frame). Setting a deadline costs; one still more than half
// ahead of the same kind is kept. Only reads that can block need one: when the bytes
// are already buffered the caller does not ask. Shutdown's deadline (now) is earlier than
// any kept here, so keeping one never delays it.
func (g *guardConn) readDeadline(kind int, d time.Duration) {
	now := time.Now()
	if g.dlKind == kind && g.dlAt.Sub(now) > d/2 {
		return
	}
	_ = g.Conn.SetReadDeadline(now.Add(d)) // an error means closed: the read reports it
	g.dlKind, g.dlAt = kind, now.Add(d)
}

// retryOnShutdown lets a frame already begun finish after shutdown interrupted the read:
// HAProxy is waiting for its answer.
func (g *guardConn) retryOnShutdown(err error) bool {
	if !g.closing.Load() || g.extended || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	g.extended = true
	g.dlKind = deadlineNone
	return g.Conn.SetReadDeadline(time.Now().Add(g.limits.grace)) == nil
}

// shutdown makes the connection end at the next frame boundary: the library then waits
// for in-flight messages, writes their ACKs and closes.
func (g *guardConn) shutdown() {
	g.closing.Store(true)
	_ = g.Conn.SetReadDeadline(time.Now()) // error means already closed, which is the goal
}
