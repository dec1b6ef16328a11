package spop

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
)

// Str, Bin and Addr build argument values for a Client's NOTIFY.
func Str(s string) Value { return Value{Kind: DataString, Bytes: []byte(s)} }
func Bin(b []byte) Value { return Value{Kind: DataBinary, Bytes: b} }
func Addr(a netip.Addr) Value {
	k := DataIPv6
	if a.Is4() {
		k = DataIPv4
	}
	return Value{Kind: k, Addr: a}
}
func Uint32(n uint32) Value { return Value{Kind: DataUint32, Uint: uint64(n)} }
func Int64(n int64) Value   { return Value{Kind: DataInt64, Int: n, Uint: uint64(n)} }
func Bool(t bool) Value     { return Value{Kind: DataBool, Bool: t} }

// AppendValue appends v as typed data.
func AppendValue(b []byte, v Value) []byte {
	switch v.Kind {
	case DataString:
		return AppendString(b, string(v.Bytes))
	case DataBinary:
		return AppendBinary(b, v.Bytes)
	case DataIPv4, DataIPv6:
		return AppendAddr(b, v.Addr)
	case DataBool:
		return AppendBool(b, v.Bool)
	case DataInt32, DataInt64:
		return AppendVarint(append(b, v.Kind), uint64(v.Int))
	case DataUint32, DataUint64:
		return AppendVarint(append(b, v.Kind), v.Uint)
	}
	return append(b, DataNull)
}

// AppendNotify appends a whole NOTIFY frame carrying msgs.
func AppendNotify(b []byte, streamID, frameID uint64, msgs ...Message) []byte {
	start := len(b)
	b = AppendHeader(b, Header{Type: TypeNotify, Flags: FlagFin, StreamID: streamID, FrameID: frameID})
	for _, m := range msgs {
		b = appendName(b, m.Name)
		b = append(b, byte(len(m.Args)))
		for _, a := range m.Args {
			b = AppendValue(appendName(b, a.Name), a.Value)
		}
	}
	return Finish(b, start)
}

// AppendHello appends a HAPROXY-HELLO frame as HAProxy sends it.
func AppendHello(b []byte, maxFrameSize uint32, healthcheck bool) []byte {
	start := len(b)
	b = AppendHeader(b, Header{Type: TypeHAProxyHello, Flags: FlagFin})
	b = AppendKV(b, "supported-versions", AppendString(nil, "2.0"))
	b = AppendKV(b, "max-frame-size", AppendUint32(nil, maxFrameSize))
	b = AppendKV(b, "capabilities", AppendString(nil, "pipelining"))
	if healthcheck {
		b = AppendKV(b, "healthcheck", AppendBool(nil, true))
	}
	b = AppendKV(b, "engine-id", AppendString(nil, "stickyseat-client"))
	return Finish(b, start)
}

// AppendDisconnect appends a HAPROXY-DISCONNECT frame with status 0.
func AppendDisconnect(b []byte) []byte {
	start := len(b)
	b = AppendHeader(b, Header{Type: TypeHAProxyDisconnect, Flags: FlagFin})
	b = AppendKV(b, "status-code", AppendUint32(nil, 0))
	b = AppendKV(b, "message", AppendString(nil, "normal"))
	return Finish(b, start)
}

// Client speaks SPOP to an agent the way HAProxy does. It is not safe for concurrent use.
type Client struct {
	conn net.Conn
	r    *bufio.Reader
	buf  []byte
	// MaxFrameSize bounds the frames the client accepts (and announces in Hello).
	MaxFrameSize uint32
}

// NewClient wraps an established connection.
func NewClient(conn net.Conn) *Client {
	return &Client{conn: conn, r: bufio.NewReader(conn), MaxFrameSize: 16380}
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Hello sends HAPROXY-HELLO and returns the AGENT-HELLO items.
func (c *Client) Hello(healthcheck bool) ([]KV, error) {
	if _, err := c.conn.Write(AppendHello(c.buf[:0], c.MaxFrameSize, healthcheck)); err != nil {
		return nil, fmt.Errorf("spop: send hello: %w", err)
	}
	h, payload, err := c.ReadFrame()
	if err != nil {
		return nil, err
	}
	if h.Type != TypeAgentHello {
		return nil, fmt.Errorf("spop: want AGENT-HELLO, got frame type %d", h.Type)
	}
	return ReadKVs(payload)
}

// Send writes raw bytes, for tests that need to misbehave.
func (c *Client) Send(b []byte) error {
	_, err := c.conn.Write(b)
	return err
}

// Notify sends one NOTIFY frame and waits for its ACK.
func (c *Client) Notify(streamID, frameID uint64, msgs ...Message) ([]Action, error) {
	c.buf = AppendNotify(c.buf[:0], streamID, frameID, msgs...)
	if _, err := c.conn.Write(c.buf); err != nil {
		return nil, fmt.Errorf("spop: send notify: %w", err)
	}
	h, payload, err := c.ReadFrame()
	if err != nil {
		return nil, err
	}
	if h.Type != TypeAck {
		return nil, fmt.Errorf("spop: want ACK, got frame type %d", h.Type)
	}
	if h.StreamID != streamID || h.FrameID != frameID {
		return nil, fmt.Errorf("spop: ACK for stream %d frame %d, want %d/%d", h.StreamID, h.FrameID, streamID, frameID)
	}
	return ReadActions(payload)
}

// ReadFrame reads one frame. The payload aliases an internal buffer valid until the next read.
func (c *Client) ReadFrame() (Header, []byte, error) {
	var lb [4]byte
	if _, err := io.ReadFull(c.r, lb[:]); err != nil {
		return Header{}, nil, fmt.Errorf("spop: read frame length: %w", err)
	}
	n := binary.BigEndian.Uint32(lb[:])
	if n < MinFrameLen || n > c.MaxFrameSize {
		return Header{}, nil, fmt.Errorf("spop: frame length %d out of range", n)
	}
	if cap(c.buf) < int(n) {
		c.buf = make([]byte, n)
	}
	body := c.buf[:n]
	if _, err := io.ReadFull(c.r, body); err != nil {
		return Header{}, nil, fmt.Errorf("spop: read frame: %w", err)
	}
	return ReadHeader(body)
}

// Vars turns the set-var actions of an ACK into a map of name to text value.
func Vars(acts []Action) map[string]string {
	m := make(map[string]string, len(acts))
	for _, a := range acts {
		if a.Type == ActionSetVar {
			m[a.Name] = a.Value.String()
		}
	}
	return m
}

// ItemUint returns a numeric item of a HELLO payload.
func ItemUint(kvs []KV, name string) (uint64, bool) {
	for _, kv := range kvs {
		if kv.Name == name {
			switch kv.Value.Kind {
			case DataInt32, DataInt64, DataUint32, DataUint64:
				return kv.Value.Uint, true
			case DataString:
				n, err := strconv.ParseUint(string(kv.Value.Bytes), 10, 64)
				return n, err == nil
			}
		}
	}
	return 0, false
}
