package agent

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/agent/spop"
	"github.com/stickyseat/stickyseat/agent/spop/spoptest"
)

func frameLen(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

// closedWithin reports whether the agent closes conn within d, reading and dropping
// anything it sends first.
func closedWithin(conn net.Conn, d time.Duration) bool {
	conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return true
}

func TestGuardClosesBadFramesOnly(t *testing.T) {
	const mfs = 16380
	badHello := func(items ...[]byte) []byte {
		b := spop.AppendHeader(nil, spop.Header{Type: spop.TypeHAProxyHello, Flags: spop.FlagFin})
		for _, it := range items {
			b = append(b, it...)
		}
		return spop.Finish(b, 0)
	}
	tests := []struct {
		name      string
		afterHelo bool // send the bytes after a valid HELLO
		bytes     []byte
	}{
		{"length 0 first", false, frameLen(0)},
		{"length 1 first", false, append(frameLen(1), 3)},
		{"length 4 first", false, append(frameLen(4), 3, 0, 0, 0)},
		{"huge first frame", false, frameLen(1 << 31)},
		{"first frame not a hello", false, spop.AppendNotify(nil, 1, 1, msg(arg("key", spop.Str("x"))))},
		{"hello without max-frame-size", false, badHello(spop.AppendKV(nil, "supported-versions", spop.AppendString(nil, "2.0")))},
		{"hello max-frame-size as string", false, badHello(spop.AppendKV(nil, "max-frame-size", spop.AppendString(nil, "16380")))},
		{"hello healthcheck as string", false, badHello(spop.AppendKV(nil, "max-frame-size", spop.AppendUint32(nil, mfs)), spop.AppendKV(nil, "healthcheck", spop.AppendString(nil, "yes")))},
		{"hello offering a frame size above the limit", false, badHello(spop.AppendKV(nil, "max-frame-size", spop.AppendUint32(nil, 64<<20)))},
		{"hello with truncated item", false, badHello([]byte{0x0e, 'm', 'a', 'x'})},
		{"length 0 after hello", true, frameLen(0)},
		{"length 3 after hello", true, append(frameLen(3), 3, 0, 0)},
		{"larger than max-frame-size", true, frameLen(mfs + 1)},
		{"4 GiB after hello", true, frameLen(0xFFFFFFFF)},
		{"notify with truncated message", true, spop.Finish(append(spop.AppendHeader(nil, spop.Header{Type: spop.TypeNotify, Flags: spop.FlagFin, StreamID: 1, FrameID: 1}), 0x0a, 's'), 0)},
		{"notify with bad varint", true, spop.Finish(append(spop.AppendHeader(nil, spop.Header{Type: spop.TypeNotify, Flags: spop.FlagFin, StreamID: 1, FrameID: 1}), 0xff, 0xff), 0)},
		{"notify with short ipv4", true, spop.Finish(append(spop.AppendHeader(nil, spop.Header{Type: spop.TypeNotify, Flags: spop.FlagFin, StreamID: 1, FrameID: 1}), 0x01, 'm', 0x01, 0x01, 'k', spop.DataIPv4, 1), 0)},
	}
	a, addr, _ := startAgent(t, &fakeDecider{}, Options{MaxFrameSize: 1 << 20})
	good := dial(t, addr) // a well-behaved HAProxy connection that must survive everything
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if tt.afterHelo {
				c := spoptest.NewClient(conn)
				c.MaxFrameSize = mfs
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Hello(false); err != nil {
					t.Fatalf("Hello: %v", err)
				}
			}
			if _, err := conn.Write(tt.bytes); err != nil {
				t.Fatal(err)
			}
			if !closedWithin(conn, 5*time.Second) {
				t.Errorf("agent kept the connection open after %s", tt.name)
			}
			acts, err := good.Notify(uint64(i+1), 1, msg(arg("key", spop.Str("alice"))))
			if err != nil {
				t.Fatalf("healthy connection broken by %s: %v", tt.name, err)
			}
			if got := spoptest.Vars(acts)[VarServer]; got != "srv-alice-" {
				t.Errorf("healthy connection answered %q; want srv-alice-", got)
			}
		})
	}
	if st := a.Stats(); st.BadFrames == 0 {
		t.Errorf("Stats().BadFrames = 0; want the guard's refusals counted")
	}
}

func TestGuardAcceptsFrameOfExactlyMaxFrameSize(t *testing.T) {
	_, addr, _ := startAgent(t, &fakeDecider{}, Options{})
	c := dial(t, addr)
	// Pad the key so the NOTIFY frame is exactly max-frame-size long.
	base := len(spop.AppendNotify(nil, 1, 1, msg(arg("key", spop.Str(""))))) - 4
	pad := int(c.MaxFrameSize) - base - 2 // the key's length varint grows to 2 bytes
	key := make([]byte, pad)
	for i := range key {
		key[i] = 'k'
	}
	f := spop.AppendNotify(nil, 1, 1, msg(arg("key", spop.Str(string(key)))))
	if got := len(f) - 4; got != int(c.MaxFrameSize) {
		t.Fatalf("test frame is %d bytes; want %d", got, c.MaxFrameSize)
	}
	acts, err := c.Notify(1, 1, msg(arg("key", spop.Str(string(key)))))
	if err != nil {
		t.Fatalf("Notify of a max-size frame: %v", err)
	}
	if got := spoptest.Vars(acts)[VarStatus]; got != "new" {
		t.Errorf("status = %q; want new", got)
	}
}

// TestGuardChecksDisconnectItems: the library asserts the types of HAPROXY-DISCONNECT items
// as it does a HELLO's, so the guard checks them: a bad one is a bad frame, not a panic in
// the decoder; a good one is answered.
func TestGuardChecksDisconnectItems(t *testing.T) {
	a, addr, _ := startAgent(t, &fakeDecider{}, Options{})
	for _, good := range []bool{true, false} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		c := spoptest.NewClient(conn)
		if _, err := c.Hello(false); err != nil {
			t.Fatalf("Hello: %v", err)
		}
		f := spop.AppendDisconnect(nil, spop.TypeHAProxyDisconnect, 0, "normal")
		if !good {
			f = spop.AppendHeader(nil, spop.Header{Type: spop.TypeHAProxyDisconnect, Flags: spop.FlagFin})
			f = spop.AppendKV(f, "healthcheck", spop.AppendString(nil, "yes"))
			f = spop.Finish(f, 0)
		}
		if _, err := conn.Write(f); err != nil {
			t.Fatal(err)
		}
		if good {
			if h, _, err := c.ReadFrame(); err != nil || h.Type != spop.TypeAgentDisconnect {
				t.Errorf("answer to a HAPROXY-DISCONNECT: frame type %d, %v; want AGENT-DISCONNECT", h.Type, err)
			}
		}
		if !closedWithin(conn, 5*time.Second) {
			t.Errorf("good=%v: the connection stayed open after a HAPROXY-DISCONNECT", good)
		}
	}
	waitFor(t, 5*time.Second, "the bad DISCONNECT counted", func() bool { return a.Stats().BadFrames == 1 })
	if st := a.Stats(); st.Panics != 0 {
		t.Errorf("Stats() = %+v; want the bad DISCONNECT refused by the guard (no panic)", st)
	}
}
