package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stickyseat/stickyseat/agent"
	"github.com/stickyseat/stickyseat/agent/spop"
	"github.com/stickyseat/stickyseat/assign"
)

// statusNames are the contract's statuses; a connection counts answers by index in it.
var statusNames = func() []string {
	var n []string
	for _, s := range assign.Statuses {
		n = append(n, s.String())
	}
	return n
}()

// batchBytes bounds how many bytes of NOTIFY frames one write carries: like HAProxy, a
// connection with several free slots sends their frames together.
const batchBytes = 16 << 10

// slot is one request in flight. The stream id of a frame is seq*pipeline+slot, so an ACK
// finds its slot without a map; the fields are atomic because the writer fills them and the
// reader reads them with only the network in between.
type slot struct {
	stream atomic.Uint64 // 0: free
	due    atomic.Int64  // when its frame was written, ns since the run's start
}

// conn is one SPOP connection: a writer (run) and a reader goroutine.
type conn struct {
	nc       net.Conn
	br       *bufio.Reader
	o        *Options
	pipeline int
	keys     *keySource
	budget   *atomic.Uint64 // requests left when Options.Requests bounds the run
	start    time.Time

	slots []slot
	free  chan int
	seq   uint64
	wbuf  []byte
	batch []int // slots of the frames in wbuf
	kbuf  []byte
	msg   spop.Message // the stickyseat message; its key argument is rewritten per request

	// Written by the writer.
	sent, newKeys uint64
	// Written by the reader.
	hist       Histogram
	statuses   [8]uint64
	answered   uint64
	maxPlace   int
	lastAnswer time.Duration

	closing  atomic.Bool
	failed   chan struct{}
	readDone chan struct{}

	mu             sync.Mutex
	err            error
	protocolErrors uint64
}

func newConn(nc net.Conn, o *Options) *conn {
	c := &conn{nc: nc, br: bufio.NewReaderSize(nc, 64<<10), o: o, failed: make(chan struct{}), readDone: make(chan struct{})}
	c.msg = spop.Message{Name: agent.MessageName, Args: []spop.KV{{Name: agent.ArgKey, Value: spop.Value{Kind: spop.DataString}}}}
	if o.Pool != "" {
		c.msg.Args = append(c.msg.Args, spop.KV{Name: agent.ArgPool, Value: spop.Str(o.Pool)})
	}
	return c
}

// fail records a protocol error and stops the connection's writer.
func (c *conn) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.protocolErrors++
	if c.err == nil {
		c.err = err
		close(c.failed)
	}
}

// hello sends HAPROXY-HELLO as HAProxy does and checks the AGENT-HELLO.
func (c *conn) hello() error {
	if err := c.nc.SetDeadline(time.Now().Add(c.o.Timeout)); err != nil {
		return err
	}
	if _, err := c.nc.Write(spop.AppendHello(nil, c.o.MaxFrameSize, false)); err != nil {
		return fmt.Errorf("send HELLO: %w", err)
	}
	body, err := c.readFrame()
	if err != nil {
		return fmt.Errorf("%w: read AGENT-HELLO: %v", ErrProtocol, err)
	}
	h, payload, err := spop.ReadHeader(body)
	if err != nil {
		return fmt.Errorf("%w: AGENT-HELLO: %v", ErrProtocol, err)
	}
	if h.Type != spop.TypeAgentHello {
		return fmt.Errorf("%w: want AGENT-HELLO (type %d), got frame type %d", ErrProtocol, spop.TypeAgentHello, h.Type)
	}
	kvs, err := spop.ReadKVs(payload)
	if err != nil {
		return fmt.Errorf("%w: AGENT-HELLO: %v", ErrProtocol, err)
	}
	c.br.Discard(4 + len(body))
	var version, caps string
	for _, kv := range kvs {
		switch kv.Name {
		case "version":
			version = kv.Value.String()
		case "capabilities":
			caps = kv.Value.String()
		}
	}
	if !strings.HasPrefix(version, "2.") {
		return fmt.Errorf("%w: AGENT-HELLO version %q, want 2.x", ErrProtocol, version)
	}
	if mfs, ok := spop.ItemUint(kvs, "max-frame-size"); !ok || mfs > uint64(c.o.MaxFrameSize) || mfs < 256 {
		return fmt.Errorf("%w: AGENT-HELLO max-frame-size %d (announced %d)", ErrProtocol, mfs, c.o.MaxFrameSize)
	}
	// Like HAProxy, pipeline only when the agent says it can.
	c.pipeline = 1
	for _, cp := range strings.Split(caps, ",") {
		if strings.TrimSpace(cp) == "pipelining" {
			c.pipeline = c.o.Pipeline
		}
	}
	c.slots = make([]slot, c.pipeline)
	c.free = make(chan int, c.pipeline)
	for i := range c.pipeline {
		c.free <- i
	}
	return c.nc.SetDeadline(time.Time{})
}

// readFrame returns the next frame's body (after its length), valid until the caller
// discards 4+len(body) bytes from c.br.
func (c *conn) readFrame() ([]byte, error) { return spop.PeekFrame(c.br, c.o.MaxFrameSize) }

// take claims one request from the run's budget.
func (c *conn) take() bool {
	if c.o.Requests == 0 {
		return true
	}
	for {
		left := c.budget.Load()
		if left == 0 {
			return false
		}
		if c.budget.CompareAndSwap(left, left-1) {
			return true
		}
	}
}

// run sends until ctx ends or the budget is spent, waits for the answers in flight and says
// DISCONNECT. Errors are recorded with fail.
func (c *conn) run(ctx context.Context, start time.Time, id int) {
	c.start = start
	go c.read()
	c.write(ctx, id)
	c.drain()
	c.closing.Store(true)
	if err := c.nc.SetDeadline(time.Now().Add(c.o.Timeout)); err == nil {
		c.nc.Write(spop.AppendDisconnect(nil, spop.TypeHAProxyDisconnect, 0, "normal")) // a peer already gone is reported by the reader
	}
	<-c.readDone
}

// write is the sending loop.
func (c *conn) write(ctx context.Context, id int) {
	var interval, next time.Duration
	if c.o.Rate > 0 {
		interval = time.Duration(float64(c.o.Connections) / c.o.Rate * float64(time.Second))
		next = interval * time.Duration(id) / time.Duration(c.o.Connections) // stagger connections
	}
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	for {
		var s int
		select {
		case s = <-c.free:
		default:
			wait.Reset(c.o.Timeout)
			select {
			case s = <-c.free:
				wait.Stop()
			case <-ctx.Done():
				return
			case <-c.failed:
				return
			case <-wait.C:
				c.fail(fmt.Errorf("%w: no answer within %s (%d frames in flight)", ErrProtocol, c.o.Timeout, c.pipeline))
				return
			}
		}
		if interval > 0 {
			if d := next - time.Since(c.start); d > 0 {
				wait.Reset(d)
				select {
				case <-wait.C:
				case <-ctx.Done():
					c.free <- s
					return
				case <-c.failed:
					return
				}
			}
			next += interval
		}
		if ctx.Err() != nil || !c.take() {
			c.free <- s
			return
		}
		c.batch = append(c.batch[:0], s)
		c.wbuf = c.appendNotify(c.wbuf[:0], s)
		// Frames already due go out in the same write.
		for len(c.wbuf) < batchBytes {
			if interval > 0 && next > time.Since(c.start) {
				break
			}
			more, ok := c.tryFree()
			if !ok {
				break
			}
			if !c.take() {
				c.free <- more
				break
			}
			if interval > 0 {
				next += interval
			}
			c.batch = append(c.batch, more)
			c.wbuf = c.appendNotify(c.wbuf, more)
		}
		// Latency counts from the write: Go's timers wake up to a millisecond late on an idle
		// machine, and that lateness is the load generator's, not the agent's.
		sentAt := int64(time.Since(c.start))
		for _, s := range c.batch {
			c.slots[s].due.Store(sentAt)
		}
		if _, err := c.nc.Write(c.wbuf); err != nil {
			if c.closing.Load() {
				return
			}
			c.fail(fmt.Errorf("%w: send NOTIFY: %v", ErrProtocol, err))
			return
		}
	}
}

// tryFree returns a free slot if one is free now.
func (c *conn) tryFree() (int, bool) {
	select {
	case s := <-c.free:
		return s, true
	default:
		return 0, false
	}
}

// appendNotify appends the NOTIFY frame of one request on slot s, as HAProxy sends the
// stickyseat message: key (a string, like req.hdr) and, when set, pool.
func (c *conn) appendNotify(b []byte, s int) []byte {
	c.seq++
	stream := c.seq*uint64(c.pipeline) + uint64(s)
	c.slots[s].stream.Store(stream)
	var fresh bool
	c.kbuf, fresh = c.keys.appendKey(c.kbuf[:0])
	c.msg.Args[0].Value.Bytes = c.kbuf
	c.sent++
	if fresh {
		c.newKeys++
	}
	return spop.AppendNotify(b, stream, 1, c.msg)
}

// drain waits until every slot is free again: all answers in flight have arrived.
func (c *conn) drain() {
	wait := time.NewTimer(c.o.Timeout)
	defer wait.Stop()
	for got := 0; got < c.pipeline; got++ {
		select {
		case <-c.free:
		case <-c.failed:
			return
		case <-wait.C:
			c.fail(fmt.Errorf("%w: %d answers missing %s after the last request", ErrProtocol, c.pipeline-got, c.o.Timeout))
			return
		}
	}
}

// read is the receiving loop; it ends when the connection closes.
func (c *conn) read() {
	defer close(c.readDone)
	for {
		body, err := c.readFrame()
		if err != nil {
			if !c.closing.Load() {
				c.fail(fmt.Errorf("%w: read: %v", ErrProtocol, err))
			}
			c.nc.Close()
			return
		}
		h, payload, err := spop.ReadHeader(body)
		if err == nil {
			switch h.Type {
			case spop.TypeAck:
				err = c.ack(h, payload)
			case spop.TypeAgentDisconnect:
				if c.closing.Load() {
					c.nc.Close()
					return
				}
				err = disconnectError(payload)
			default:
				err = fmt.Errorf("unexpected frame type %d", h.Type)
			}
		}
		if err != nil {
			c.fail(fmt.Errorf("%w: %v", ErrProtocol, err))
			c.nc.Close()
			return
		}
		c.br.Discard(4 + len(body))
	}
}

// disconnectError describes an AGENT-DISCONNECT the agent sent on its own.
func disconnectError(payload []byte) error {
	kvs, err := spop.ReadKVs(payload)
	if err != nil {
		return fmt.Errorf("AGENT-DISCONNECT: %v", err)
	}
	var msg string
	for _, kv := range kvs {
		if kv.Name == "message" {
			msg = kv.Value.String()
		}
	}
	code, _ := spop.ItemUint(kvs, "status-code")
	return fmt.Errorf("agent disconnected: status %d %q", code, msg)
}

// errContract is an ACK that parses but breaks the agent's contract with HAProxy (the
// statuses and variables HAProxy's configuration relies on).
var errContract = errors.New("answer breaks the contract")

// ack checks and counts one ACK.
func (c *conn) ack(h spop.Header, payload []byte) error {
	now := time.Since(c.start)
	s := int(h.StreamID % uint64(c.pipeline))
	if h.StreamID == 0 || c.slots[s].stream.Load() != h.StreamID {
		return fmt.Errorf("ACK for stream %d, which has no request in flight", h.StreamID)
	}
	if h.FrameID != 1 {
		return fmt.Errorf("ACK for stream %d frame %d, want frame 1", h.StreamID, h.FrameID)
	}
	status, server, place, err := readAnswer(payload)
	if err != nil {
		return fmt.Errorf("ACK for stream %d: %w", h.StreamID, err)
	}
	if status < 0 {
		return fmt.Errorf("%w: ACK for stream %d sets no %s", errContract, h.StreamID, agent.VarStatus)
	}
	seated := assign.Statuses[status].Seated()
	if seated != (server != nil) || (seated && len(server) == 0) {
		return fmt.Errorf("%w: status %s with server %q", errContract, statusNames[status], server)
	}
	// A queued answer carries the place HAProxy shows; no other answer has one.
	if queued := assign.Statuses[status] == assign.StatusQueued; queued != (place > 0) || place < 0 {
		return fmt.Errorf("%w: status %s with %s %d (0: none, -1: not a positive decimal)", errContract, statusNames[status], agent.VarPosition, place)
	}
	if w := c.o.WhenFull; w != nil {
		switch {
		case *w == assign.WhenFullQueue && assign.Statuses[status] == assign.StatusFull:
			return fmt.Errorf("%w: status full, want queued (the pool does not queue, or its line reached its maximum)", errContract)
		case *w == assign.WhenFullReject && place > 0:
			return fmt.Errorf("%w: status queued, want full (the pool rejects)", errContract)
		}
	}
	c.maxPlace = max(c.maxPlace, place)
	c.hist.Record(now - time.Duration(c.slots[s].due.Load()))
	c.statuses[status]++
	c.answered++
	c.lastAnswer = now
	c.slots[s].stream.Store(0)
	c.free <- s
	return nil
}

// readAnswer finds txn.stickyseat.status (its index in statusNames, -1 when absent),
// .server (nil when absent) and .position (0 when absent, -1 when not a positive decimal) in
// an ACK payload without allocating.
func readAnswer(p []byte) (status int, server []byte, place int, err error) {
	status = -1
	for len(p) > 0 {
		a, n, err := spop.ReadAction(p)
		if err != nil {
			return 0, nil, 0, err
		}
		p = p[n:]
		if a.Type != spop.ActionSetVar {
			continue
		}
		if a.Scope != spop.ScopeTransaction {
			return 0, nil, 0, fmt.Errorf("%w: variable %q in scope %d, want transaction", errContract, a.Name, a.Scope)
		}
		switch string(a.Name) {
		case agent.VarStatus:
			if a.Value.Kind != spop.DataString {
				return 0, nil, 0, fmt.Errorf("%w: %s of data type %d, want string", errContract, a.Name, a.Value.Kind)
			}
			status = -2
			for i, s := range statusNames {
				if string(a.Value.Bytes) == s {
					status = i
				}
			}
			if status == -2 {
				return 0, nil, 0, fmt.Errorf("%w: unknown status %q", errContract, a.Value.Bytes)
			}
		case agent.VarServer:
			if a.Value.Kind != spop.DataString {
				return 0, nil, 0, fmt.Errorf("%w: %s of data type %d, want string", errContract, a.Name, a.Value.Kind)
			}
			server = a.Value.Bytes
			if server == nil {
				server = []byte{}
			}
		case agent.VarPosition:
			if a.Value.Kind != spop.DataString {
				return 0, nil, 0, fmt.Errorf("%w: %s of data type %d, want string", errContract, a.Name, a.Value.Kind)
			}
			place = parsePlace(a.Value.Bytes)
		}
	}
	return status, server, place, nil
}

// parsePlace reads a place: a decimal from 1 to 10^9 without sign or leading zero, else -1.
func parsePlace(b []byte) int {
	if len(b) == 0 || len(b) > 10 || b[0] == '0' {
		return -1
	}
	n := 0
	for _, d := range b {
		if d < '0' || d > '9' {
			return -1
		}
		n = n*10 + int(d-'0')
	}
	if n > 1e9 {
		return -1
	}
	return n
}
