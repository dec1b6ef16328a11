package spop

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// frameLength checks the 4 length bytes of a frame: at least a header, at most max.
func frameLength(lb []byte, max uint32) (uint32, error) {
	n := binary.BigEndian.Uint32(lb)
	if n < MinFrameLen || n > max {
		return 0, fmt.Errorf("spop: frame length %d out of range [%d, %d]", n, MinFrameLen, max)
	}
	return n, nil
}

// PeekFrame returns the body (after its 4 length bytes) of the next frame in r, at most
// max bytes long, without copying: it stays valid until the caller discards 4+len(body)
// bytes from r, which must be able to buffer a whole frame.
func PeekFrame(r *bufio.Reader, max uint32) ([]byte, error) {
	lb, err := r.Peek(4)
	if err != nil {
		return nil, err
	}
	n, err := frameLength(lb, max)
	if err != nil {
		return nil, err
	}
	if int(n)+4 > r.Size() {
		return nil, fmt.Errorf("spop: frame of %d bytes does not fit the %d-byte read buffer", n, r.Size())
	}
	b, err := r.Peek(4 + int(n))
	if err != nil {
		return nil, err
	}
	return b[4:], nil
}

// ReadFrame reads the next frame, at most max bytes long, and returns its body (after its
// 4 length bytes) in buf, grown if needed.
func ReadFrame(r io.Reader, buf []byte, max uint32) ([]byte, error) {
	var lb [4]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return nil, fmt.Errorf("spop: read frame length: %w", err)
	}
	n, err := frameLength(lb[:], max)
	if err != nil {
		return nil, err
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	body := buf[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("spop: read frame: %w", err)
	}
	return body, nil
}

// AppendNotify appends a whole NOTIFY frame carrying msgs.
func AppendNotify(b []byte, streamID, frameID uint64, msgs ...Message) []byte {
	start := len(b)
	b = AppendHeader(b, Header{Type: TypeNotify, Flags: FlagFin, StreamID: streamID, FrameID: frameID})
	for _, m := range msgs {
		b = AppendName(b, m.Name)
		b = append(b, byte(len(m.Args)))
		for _, a := range m.Args {
			b = AppendValue(AppendName(b, a.Name), a.Value)
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

// AppendAgentHello appends an AGENT-HELLO frame: version 2.0, the max-frame-size and
// capabilities given.
func AppendAgentHello(b []byte, maxFrameSize uint32, capabilities string) []byte {
	start := len(b)
	b = AppendHeader(b, Header{Type: TypeAgentHello, Flags: FlagFin})
	b = AppendKV(b, "version", AppendString(nil, "2.0"))
	b = AppendKV(b, "max-frame-size", AppendUint32(nil, maxFrameSize))
	b = AppendKV(b, "capabilities", AppendString(nil, capabilities))
	return Finish(b, start)
}

// AppendDisconnect appends a HAPROXY-DISCONNECT (typ TypeHAProxyDisconnect) or an
// AGENT-DISCONNECT (TypeAgentDisconnect) frame.
func AppendDisconnect(b []byte, typ byte, status uint32, message string) []byte {
	start := len(b)
	b = AppendHeader(b, Header{Type: typ, Flags: FlagFin})
	b = AppendKV(b, "status-code", AppendUint32(nil, status))
	b = AppendKV(b, "message", AppendString(nil, message))
	return Finish(b, start)
}
