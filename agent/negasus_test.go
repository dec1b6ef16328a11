package agent

// These tests pin what negasus.go says the agent relies on in negasus/haproxy-spoe-go: each
// drives the real library (serveLibrary, as the agent runs it) over a loopback connection
// with hand-written frames from agent/spop. One failing after a library upgrade names the
// assumption in negasus.go to revisit.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/negasus/haproxy-spoe-go/action"
	"github.com/negasus/haproxy-spoe-go/message"
	"github.com/negasus/haproxy-spoe-go/request"

	"github.com/stickyseat/stickyseat/agent/spop"
	"github.com/stickyseat/stickyseat/agent/spop/spoptest"
)

// libConn is the library's side of a test connection: it records what the library writes,
// whether it closed the connection and whether a Read returned io.EOF.
type libConn struct {
	net.Conn
	mu             sync.Mutex
	writes         [][]byte
	closed, sawEOF bool
}

func (c *libConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err == io.EOF {
		c.mu.Lock()
		c.sawEOF = true
		c.mu.Unlock()
	}
	return n, err
}

func (c *libConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, append([]byte(nil), p...))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *libConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return c.Conn.Close()
}

func (c *libConn) state() (writes [][]byte, closed, sawEOF bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.writes...), c.closed, c.sawEOF
}

// libLog collects the library's error lines.
type libLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *libLog) Errorf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *libLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// libRun is one connection served by the library.
type libRun struct {
	client *net.TCPConn // HAProxy's side
	srv    *libConn
	log    *libLog
	// ended receives what serveLibrary panicked with (nil: it returned), on the goroutine
	// that called it.
	ended chan any
}

// startLibrary serves one loopback connection with serveLibrary and handler h.
func startLibrary(t *testing.T, h func(*request.Request)) *libRun {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	client.SetDeadline(time.Now().Add(10 * time.Second))
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	r := &libRun{client: client.(*net.TCPConn), srv: &libConn{Conn: sc}, log: &libLog{}, ended: make(chan any, 1)}
	go func() {
		defer func() { r.ended <- recover() }()
		serveLibrary(r.srv, h, r.log)
	}()
	t.Cleanup(func() {
		r.client.Close()
		select {
		case <-r.ended:
		case <-time.After(10 * time.Second):
			t.Errorf("the library still serves the connection 10s after the test")
		}
		r.srv.Conn.Close()
	})
	return r
}

func (r *libRun) send(t *testing.T, b []byte) {
	t.Helper()
	if _, err := r.client.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// read reads one frame from the library.
func (r *libRun) read(t *testing.T) (spop.Header, []byte) {
	t.Helper()
	body, err := spop.ReadFrame(r.client, nil, 1<<20)
	if err != nil {
		t.Fatalf("reading a frame from the library: %v", err)
	}
	h, payload, err := spop.ReadHeader(body)
	if err != nil {
		t.Fatalf("frame from the library: %v", err)
	}
	return h, payload
}

// hello does the HELLO handshake and returns the AGENT-HELLO items.
func (r *libRun) hello(t *testing.T, maxFrameSize uint32) []spop.KV {
	t.Helper()
	r.send(t, spop.AppendHello(nil, maxFrameSize, false))
	h, payload := r.read(t)
	if h.Type != spop.TypeAgentHello {
		t.Fatalf("answer to HELLO has frame type %d; want AGENT-HELLO", h.Type)
	}
	kvs, err := spop.ReadKVs(payload)
	if err != nil {
		t.Fatalf("AGENT-HELLO: %v", err)
	}
	return kvs
}

// wantEnd waits for serveLibrary to end and returns what it panicked with (nil if it
// returned).
func (r *libRun) wantEnd(t *testing.T) any {
	t.Helper()
	select {
	case p := <-r.ended:
		r.ended <- p // for the cleanup
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("the library did not end the connection within 10s")
		return nil
	}
}

// wantClosed checks the client reads the end of the connection (after any frames left).
func (r *libRun) wantClosed(t *testing.T) {
	t.Helper()
	if n, err := io.Copy(io.Discard, r.client); err != nil || n != 0 {
		t.Errorf("after the last frame: %d more bytes, %v; want the connection closed", n, err)
	}
}

func noHandler(*request.Request) {}

func notifyFrame(stream uint64, msgs ...spop.Message) []byte {
	return spop.AppendNotify(nil, stream, 1, msgs...)
}

// Assumption 1.
func TestNegasusDecodesOnTheCallersGoroutine(t *testing.T) {
	called := make(chan struct{}, 1)
	r := startLibrary(t, func(*request.Request) { called <- struct{}{} })
	r.hello(t, 16380)
	// A message whose name claims 10 bytes where one follows: the decoder slices past the end.
	bad := spop.AppendHeader(nil, spop.Header{Type: spop.TypeNotify, Flags: spop.FlagFin, StreamID: 1, FrameID: 1})
	r.send(t, spop.Finish(append(bad, 0x0a, 's'), 0))
	if p := r.wantEnd(t); p == nil {
		t.Errorf("a malformed NOTIFY did not panic on the goroutine calling serveLibrary; if the library now refuses it with an error, the recover in serveConn is only a safety net; if it panics elsewhere, the process dies")
	}
	select {
	case <-called:
		t.Errorf("the handler ran for a malformed NOTIFY")
	default:
	}
}

// Assumption 2, with the end coming from Read (EOF) or from a HAPROXY-DISCONNECT.
func TestNegasusEndsCleanlyAfterInFlightAcks(t *testing.T) {
	for _, end := range []string{"EOF", "DISCONNECT"} {
		t.Run(end, func(t *testing.T) {
			started, release := make(chan struct{}), make(chan struct{})
			r := startLibrary(t, func(req *request.Request) {
				close(started)
				<-release
				setVar(req, VarStatus, "hit")
			})
			r.hello(t, 16380)
			r.send(t, notifyFrame(1, msg(arg("key", spop.Str("a")))))
			<-started
			if end == "EOF" {
				r.client.CloseWrite()
				waitFor(t, 5*time.Second, "the library reading EOF", func() bool { _, _, eof := r.srv.state(); return eof })
			} else {
				r.send(t, spop.AppendDisconnect(nil, spop.TypeHAProxyDisconnect, 0, "normal"))
				if h, _ := r.read(t); h.Type != spop.TypeAgentDisconnect {
					t.Fatalf("answer to HAPROXY-DISCONNECT has frame type %d; want AGENT-DISCONNECT", h.Type)
				}
			}
			if _, closed, _ := r.srv.state(); closed {
				t.Fatalf("the library closed the connection with a message in flight")
			}
			close(release)
			h, payload := r.read(t)
			acts, err := spop.ReadActions(payload)
			if h.Type != spop.TypeAck || h.StreamID != 1 || err != nil || spoptest.Vars(acts)[VarStatus] != "hit" {
				t.Fatalf("after the end: frame type %d stream %d, %v, %v; want the in-flight message's ACK", h.Type, h.StreamID, spoptest.Vars(acts), err)
			}
			r.wantClosed(t)
			if p := r.wantEnd(t); p != nil {
				t.Fatalf("serveLibrary panicked: %v", p)
			}
			if _, closed, _ := r.srv.state(); !closed {
				t.Errorf("serveLibrary returned without closing the connection")
			}
			if l := r.log.get(); len(l) != 0 {
				t.Errorf("a clean end logged %q; want nothing", l)
			}
		})
	}
}

// Assumption 3.
func TestNegasusTrustsTheFrameLength(t *testing.T) {
	for n := uint32(1); n <= minFrameLen; n++ {
		t.Run(fmt.Sprint("length ", n), func(t *testing.T) {
			acked := make(chan struct{}, 1)
			r := startLibrary(t, func(*request.Request) { acked <- struct{}{} })
			r.hello(t, 16380)
			// A NOTIFY header cut to n bytes: type, flags, stream id 1, frame id 1.
			body := []byte{spop.TypeNotify, 0, 0, 0, 1, 1, 1}[:n]
			r.send(t, append(binary.BigEndian.AppendUint32(nil, n), body...))
			if n < minFrameLen {
				if p := r.wantEnd(t); p == nil {
					t.Errorf("a frame of length %d did not panic the library; the guard refuses lengths below %d because it did", n, minFrameLen)
				}
				return
			}
			if h, _ := r.read(t); h.Type != spop.TypeAck {
				t.Errorf("a NOTIFY of exactly a header got frame type %d; want an ACK", h.Type)
			}
		})
	}
}

// Assumption 4: each item the library asserts, with another type, panics it in a HELLO and
// in a DISCONNECT; checkItems refuses exactly those.
func TestNegasusAssertsItemTypes(t *testing.T) {
	frame := func(typ byte, items ...[]byte) []byte {
		b := spop.AppendHeader(nil, spop.Header{Type: typ, Flags: spop.FlagFin})
		for _, it := range items {
			b = append(b, it...)
		}
		return spop.Finish(b, 0)
	}
	mfs := spop.AppendKV(nil, "max-frame-size", spop.AppendUint32(nil, 16380))
	tests := []struct {
		item  string
		wrong []byte
	}{
		{"healthcheck", spop.AppendString(nil, "yes")},
		{"max-frame-size", spop.AppendString(nil, "16380")},
		{"engine-id", spop.AppendUint32(nil, 7)},
	}
	for _, tt := range tests {
		bad := spop.AppendKV(nil, tt.item, tt.wrong)
		for _, typ := range []byte{spop.TypeHAProxyHello, spop.TypeHAProxyDisconnect} {
			t.Run(fmt.Sprintf("%s in frame type %d", tt.item, typ), func(t *testing.T) {
				r := startLibrary(t, noHandler)
				items := [][]byte{bad}
				if tt.item != "max-frame-size" {
					items = append([][]byte{mfs}, bad)
				}
				if typ == spop.TypeHAProxyDisconnect {
					r.hello(t, 16380)
				}
				f := frame(typ, items...)
				r.send(t, f)
				if p := r.wantEnd(t); p == nil {
					t.Errorf("%s of the wrong type did not panic the library; update checkItems to what it asserts now", tt.item)
				}
				_, payload, _ := spop.ReadHeader(f[4:])
				kvs, err := spop.ReadKVs(payload)
				if err != nil {
					t.Fatal(err)
				}
				if checkItems(kvs) == nil {
					t.Errorf("checkItems let %s of the wrong type through", tt.item)
				}
			})
		}
	}
	// The right types pass checkItems and the library.
	kvs, _ := spop.ReadKVs(mustPayload(t, spop.AppendHello(nil, 16380, true)))
	if err := checkItems(kvs); err != nil {
		t.Errorf("checkItems(a HELLO as HAProxy sends it) = %v", err)
	}
}

func mustPayload(t *testing.T, frame []byte) []byte {
	t.Helper()
	_, payload, err := spop.ReadHeader(frame[4:])
	if err != nil {
		t.Fatal(err)
	}
	return payload
}

// Assumption 5.
func TestNegasusAgentHello(t *testing.T) {
	for _, offered := range []uint32{minFrameLen, 12345, 1 << 20} {
		r := startLibrary(t, noHandler)
		kvs := r.hello(t, offered)
		got, ok := spop.ItemUint(kvs, "max-frame-size")
		if !ok || got != uint64(negotiatedFrameSize(offered)) {
			t.Errorf("AGENT-HELLO max-frame-size = %d (found %v) for %d offered; want negotiatedFrameSize = %d", got, ok, offered, negotiatedFrameSize(offered))
		}
		var caps string
		for _, kv := range kvs {
			if kv.Name == "capabilities" {
				caps = kv.Value.String()
			}
		}
		if !strings.Contains(","+caps+",", ",pipelining,") {
			t.Errorf("AGENT-HELLO capabilities %q; want pipelining among them", caps)
		}
	}
}

// Assumption 6: the AGENT-HELLO, every ACK and the AGENT-DISCONNECT each come in one Write
// of one whole frame, and isAck tells the ACKs.
func TestNegasusOneFramePerWrite(t *testing.T) {
	r := startLibrary(t, func(req *request.Request) { setVar(req, VarStatus, "hit") })
	r.hello(t, 16380)
	const notifies = 5
	for i := range notifies {
		r.send(t, notifyFrame(uint64(i+1), msg(arg("key", spop.Str("a")))))
	}
	for range notifies {
		r.read(t)
	}
	r.send(t, spop.AppendDisconnect(nil, spop.TypeHAProxyDisconnect, 0, "normal"))
	r.read(t)
	r.wantEnd(t)
	writes, _, _ := r.srv.state()
	var types []byte
	acks := 0
	for _, w := range writes {
		if len(w) < 5 || int(binary.BigEndian.Uint32(w))+4 != len(w) {
			t.Fatalf("a write of %d bytes (% x...) is not one whole frame", len(w), w[:min(len(w), 8)])
		}
		types = append(types, w[4])
		if isAck(w) {
			acks++
		}
	}
	if len(writes) != notifies+2 || types[0] != spop.TypeAgentHello || types[len(types)-1] != spop.TypeAgentDisconnect || acks != notifies {
		t.Errorf("writes of frame types %v (%d ACKs by isAck); want AGENT-HELLO, %d ACKs, AGENT-DISCONNECT, one write each", types, acks, notifies)
	}
}

// Assumption 7: handlers of pipelined NOTIFYs run at once, and each NOTIFY gets exactly one
// ACK, whether its message is answered, ignored or absent.
func TestNegasusGoroutineAndAckPerNotify(t *testing.T) {
	firstIn, secondIn := make(chan struct{}), make(chan struct{})
	var overlapped bool
	r := startLibrary(t, func(req *request.Request) {
		switch req.StreamID {
		case 1:
			close(firstIn)
			select { // runs alone if the library handles one NOTIFY at a time
			case <-secondIn:
				overlapped = true
			case <-time.After(5 * time.Second):
			}
			setVar(req, VarStatus, "hit")
		case 2:
			<-firstIn
			close(secondIn)
		}
	})
	r.hello(t, 16380)
	var frames []byte
	frames = append(frames, notifyFrame(1, msg(arg("key", spop.Str("a"))))...)
	frames = append(frames, notifyFrame(2, msg(arg("key", spop.Str("b"))))...)
	frames = append(frames, notifyFrame(3, spop.Message{Name: "other"})...)
	frames = append(frames, notifyFrame(4)...)
	r.send(t, frames)
	seen := map[uint64]int{}
	for range 4 {
		h, _ := r.read(t)
		if h.Type != spop.TypeAck {
			t.Fatalf("frame type %d; want an ACK", h.Type)
		}
		seen[h.StreamID]++
	}
	r.client.CloseWrite()
	r.wantClosed(t)
	r.wantEnd(t)
	if !reflect.DeepEqual(seen, map[uint64]int{1: 1, 2: 1, 3: 1, 4: 1}) {
		t.Errorf("ACKs per stream %v; want one for each of streams 1-4", seen)
	}
	if !overlapped {
		t.Errorf("the second NOTIFY's handler did not run while the first's was running: the library no longer gives each NOTIFY its own goroutine")
	}
	if !takesToken(spop.TypeNotify) || takesToken(spop.TypeHAProxyDisconnect) || takesToken(spop.TypeHAProxyHello) {
		t.Errorf("takesToken must hold for NOTIFY frames only")
	}
}

// Assumption 8: the Go type of each data type, and argText's agreement with
// spop.Value.Text on every one.
func TestNegasusArgumentTypes(t *testing.T) {
	tests := []struct {
		v      spop.Value
		goType any
	}{
		{spop.Value{Kind: spop.DataNull}, nil},
		{spop.Bool(true), true},
		{spop.Bool(false), false},
		{spop.Value{Kind: spop.DataInt32, Int: -5, Uint: uint64(1<<64 - 5)}, int32(-5)},
		{spop.Uint32(1 << 31), uint32(1 << 31)},
		{spop.Int64(-1 << 40), int64(-1 << 40)},
		{spop.Value{Kind: spop.DataUint64, Uint: 1 << 63}, uint64(1 << 63)},
		{spop.Addr(netip.MustParseAddr("192.0.2.7")), net.IP{192, 0, 2, 7}},
		{spop.Addr(netip.MustParseAddr("2001:db8::1")), net.ParseIP("2001:db8::1")},
		{spop.Addr(netip.MustParseAddr("::ffff:192.0.2.7")), net.ParseIP("::ffff:192.0.2.7")},
		{spop.Str("alice"), "alice"},
		{spop.Bin([]byte{0, 'b', 0xff}), []byte{0, 'b', 0xff}},
	}
	var got []any
	r := startLibrary(t, func(req *request.Request) {
		for _, m := range *req.Messages {
			for _, it := range m.KV.Data() {
				if b, ok := it.Value.([]byte); ok {
					it.Value = append([]byte(nil), b...) // kept past the handler: copied
				}
				got = append(got, it.Value)
			}
		}
	})
	r.hello(t, 16380)
	var args []spop.KV
	for i, tt := range tests {
		args = append(args, arg(fmt.Sprint("a", i), tt.v))
	}
	r.send(t, notifyFrame(1, msg(args...)))
	r.read(t)
	r.client.CloseWrite()
	r.wantClosed(t)
	r.wantEnd(t)
	if len(got) != len(tests) {
		t.Fatalf("the handler saw %d arguments; want %d", len(got), len(tests))
	}
	for i, tt := range tests {
		if !reflect.DeepEqual(got[i], tt.goType) {
			t.Errorf("data type %d (%v) arrived as %T %v; want %T %v", tt.v.Kind, tt.v, got[i], got[i], tt.goType, tt.goType)
		}
		text, err := argText(got[i])
		want, wantErr := tt.v.Text()
		if text != want || (err == nil) != (wantErr == nil) {
			t.Errorf("argText(%T %v) = %q, %v; spop.Value.Text = %q, %v: they must agree", got[i], got[i], text, err, want, wantErr)
		}
		if err != nil && !errors.Is(err, errArgType) {
			t.Errorf("argText(%T %v) error %v is not errArgType", got[i], got[i], err)
		}
	}
}

// Assumption 9: a NOTIFY's values stay intact while its handler runs, even as the library
// decodes later frames of the connection; once the handler returns the library recycles
// its messages.
func TestNegasusValuesLiveUntilTheHandlerReturns(t *testing.T) {
	secondDone := make(chan struct{})
	var kept *message.Message
	var bodyDuring string
	r := startLibrary(t, func(req *request.Request) {
		if req.StreamID == 2 {
			close(secondDone)
			return
		}
		m := (*req.Messages)[0]
		body, _ := argBody(m.KV.Data()[0].Value)
		select {
		case <-secondDone: // the next frame has been decoded and handled meanwhile
		case <-time.After(5 * time.Second):
		}
		kept, bodyDuring = m, string(body)
	})
	r.hello(t, 16380)
	r.send(t, notifyFrame(1, msg(arg("body", spop.Bin([]byte("first-body"))))))
	r.send(t, notifyFrame(2, msg(arg("body", spop.Bin([]byte("SECOND-BDY"))))))
	r.read(t)
	r.read(t)
	r.client.CloseWrite()
	r.wantClosed(t)
	r.wantEnd(t) // every handler has returned and the library has released its requests
	if bodyDuring != "first-body" {
		t.Errorf("the body read in place during the handler was %q; want first-body: the library reused it before the handler returned", bodyDuring)
	}
	if kept.Name != "" || len(kept.KV.Data()) != 0 {
		t.Errorf("a message kept past its handler still reads %q with %d items; the library no longer recycles messages (copying what is kept stays right)", kept.Name, len(kept.KV.Data()))
	}
}

// Assumption 10: strings go out as string typed data; an int the agent must never send
// panics the encoder, and a float fails to encode.
func TestNegasusSetVarEncoding(t *testing.T) {
	r := startLibrary(t, func(req *request.Request) {
		setVar(req, VarStatus, "new")
		setVar(req, VarServer, "s1")
	})
	r.hello(t, 16380)
	r.send(t, notifyFrame(1, msg(arg("key", spop.Str("a")))))
	_, payload := r.read(t)
	acts, err := spop.ReadActions(payload)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range acts {
		if a.Type != spop.ActionSetVar || a.Scope != spop.ScopeTransaction || a.Value.Kind != spop.DataString {
			t.Errorf("action %s: type %d scope %d data type %d; want set-var, transaction, string", a.Name, a.Type, a.Scope, a.Value.Kind)
		}
	}
	if v := spoptest.Vars(acts); v[VarStatus] != "new" || v[VarServer] != "s1" {
		t.Errorf("vars %v; want status=new server=s1", v)
	}
	// The ACK writer's encoder, called as the library calls it, on values the agent avoids.
	// (Over a connection the panic would happen on the library's goroutine and end the test
	// binary.)
	panicked := func(v any) (p any, err error) {
		defer func() { p = recover() }()
		a := action.NewSetVar(action.ScopeTransaction, "n", v)
		_, err = a.Marshal(nil)
		return nil, err
	}
	if p, _ := panicked(int(-1)); p == nil {
		t.Errorf("a negative int no longer panics the ACK encoder: setVar could take numbers")
	}
	if p, err := panicked(1.5); p != nil || err == nil {
		t.Errorf("a float: panic %v, error %v; want an encoding error (the ACK is then never written)", p, err)
	}
}

// Assumption 11.
func TestNegasusHealthcheckHelloCloses(t *testing.T) {
	r := startLibrary(t, noHandler)
	r.send(t, spop.AppendHello(nil, 16380, true))
	if h, _ := r.read(t); h.Type != spop.TypeAgentHello {
		t.Fatalf("answer to a healthcheck HELLO has frame type %d; want AGENT-HELLO", h.Type)
	}
	r.wantClosed(t)
	if p := r.wantEnd(t); p != nil {
		t.Fatalf("serveLibrary panicked: %v", p)
	}
	if l := r.log.get(); len(l) != 0 {
		t.Errorf("a healthcheck logged %q; want nothing", l)
	}
}
