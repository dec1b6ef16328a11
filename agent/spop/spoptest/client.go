// Package spoptest is an SPOP client for tests: it speaks to an agent the way HAProxy
// does, with the codec of package spop.
package spoptest

import (
	"bufio"
	"fmt"
	"net"

	"github.com/stickyseat/stickyseat/agent/spop"
)

// Client speaks SPOP to an agent the way HAProxy does, one frame at a time. It is not safe
// for concurrent use.
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
func (c *Client) Hello(healthcheck bool) ([]spop.KV, error) {
	if _, err := c.conn.Write(spop.AppendHello(c.buf[:0], c.MaxFrameSize, healthcheck)); err != nil {
		return nil, fmt.Errorf("spop: send hello: %w", err)
	}
	h, payload, err := c.ReadFrame()
	if err != nil {
		return nil, err
	}
	if h.Type != spop.TypeAgentHello {
		return nil, fmt.Errorf("spop: want AGENT-HELLO, got frame type %d", h.Type)
	}
	return spop.ReadKVs(payload)
}

// Notify sends one NOTIFY frame and waits for its ACK, whose actions it returns (they
// do not alias the client's buffer).
func (c *Client) Notify(streamID, frameID uint64, msgs ...spop.Message) ([]spop.Action, error) {
	c.buf = spop.AppendNotify(c.buf[:0], streamID, frameID, msgs...)
	if _, err := c.conn.Write(c.buf); err != nil {
		return nil, fmt.Errorf("spop: send notify: %w", err)
	}
	h, payload, err := c.ReadFrame()
	if err != nil {
		return nil, err
	}
	if h.Type != spop.TypeAck {
		return nil, fmt.Errorf("spop: want ACK, got frame type %d", h.Type)
	}
	if h.StreamID != streamID || h.FrameID != frameID {
		return nil, fmt.Errorf("spop: ACK for stream %d frame %d, want %d/%d", h.StreamID, h.FrameID, streamID, frameID)
	}
	return spop.ReadActions(append([]byte(nil), payload...))
}

// ReadFrame reads one frame. The payload aliases an internal buffer valid until the next read.
func (c *Client) ReadFrame() (spop.Header, []byte, error) {
	body, err := spop.ReadFrame(c.r, c.buf, c.MaxFrameSize)
	if err != nil {
		return spop.Header{}, nil, err
	}
	c.buf = body
	return spop.ReadHeader(body)
}

// Vars turns the set-var actions of an ACK into a map of name to value (Value.String).
func Vars(acts []spop.Action) map[string]string {
	m := make(map[string]string, len(acts))
	for _, a := range acts {
		if a.Type == spop.ActionSetVar {
			m[string(a.Name)] = a.Value.String()
		}
	}
	return m
}
