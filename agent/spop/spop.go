// Package spop encodes and decodes the SPOP frames stickyseat needs on both sides of the
// protocol (HAProxy's doc/SPOE.txt, version 2.0), with every length checked. It is the
// project's one codec for SPOP bytes: the agent's frame guard decodes HELLO frames with it,
// the load generator and the bare responder speak it, and the tests build their frames
// with it. (Frames the agent answers are encoded by negasus/haproxy-spoe-go; agent/negasus.go
// lists what the agent relies on there.)
package spop

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// Frame types (SPOE.txt 3.2.4).
const (
	TypeHAProxyHello      byte = 1
	TypeHAProxyDisconnect byte = 2
	TypeNotify            byte = 3
	TypeAgentHello        byte = 101
	TypeAgentDisconnect   byte = 102
	TypeAck               byte = 103
)

// Typed data types (SPOE.txt 3.1).
const (
	DataNull   byte = 0
	DataBool   byte = 1
	DataInt32  byte = 2
	DataUint32 byte = 3
	DataInt64  byte = 4
	DataUint64 byte = 5
	DataIPv4   byte = 6
	DataIPv6   byte = 7
	DataString byte = 8
	DataBinary byte = 9
)

// Action types and variable scopes of an ACK (SPOE.txt 3.4).
const (
	ActionSetVar   byte = 1
	ActionUnsetVar byte = 2

	ScopeTransaction byte = 2
)

// FlagFin marks the last fragment of a frame; stickyseat never fragments.
const FlagFin uint32 = 1

// MinFrameLen is the shortest frame body: type, 4 flag bytes, a one-byte stream id and a
// one-byte frame id.
const MinFrameLen = 1 + 4 + 1 + 1

// ErrShort is returned when a buffer ends inside a value.
var ErrShort = errors.New("spop: buffer ends inside a value")

// AppendVarint appends n in SPOP's varint encoding (the one HAProxy's peers use).
func AppendVarint(b []byte, n uint64) []byte {
	if n < 240 {
		return append(b, byte(n))
	}
	b = append(b, byte(n)|0xF0)
	n = (n - 240) >> 4
	for n >= 128 {
		b = append(b, byte(n)|0x80)
		n = (n - 128) >> 7
	}
	return append(b, byte(n))
}

// Varint decodes a varint at the start of b and returns it with its length.
func Varint(b []byte) (uint64, int, error) {
	if len(b) == 0 {
		return 0, 0, ErrShort
	}
	n := uint64(b[0])
	if n < 240 {
		return n, 1, nil
	}
	shift := uint(4)
	for i := 1; i < len(b) && i < 11; i++ {
		n += uint64(b[i]) << shift
		shift += 7
		if b[i] < 128 {
			return n, i + 1, nil
		}
	}
	return 0, 0, ErrShort
}

// Value is one decoded typed datum. Kind is one of the Data* types; the matching field
// holds the value (Bytes for string and binary, which alias the decoded buffer).
type Value struct {
	Kind  byte
	Bool  bool
	Int   int64
	Uint  uint64
	Addr  netip.Addr
	Bytes []byte
}

// ErrNoText is returned by Text for a value that has no text form.
var ErrNoText = errors.New("spop: value has no text form")

// Text renders a value as text: the one rule by which an argument becomes a user key, a
// pool name or a variable's value. Strings and binaries are their bytes, addresses their
// usual form (an IPv4-mapped IPv6 address as IPv4), integers decimal, null the empty
// string. A boolean has no text form: as a key it would put every user in one of two
// seats, so it is refused (ErrNoText). The result never aliases the decoded buffer.
func (v Value) Text() (string, error) {
	switch v.Kind {
	case DataNull:
		return "", nil
	case DataString, DataBinary:
		return string(v.Bytes), nil
	case DataIPv4, DataIPv6:
		return v.Addr.Unmap().String(), nil
	case DataInt32, DataInt64:
		return strconv.FormatInt(v.Int, 10), nil
	case DataUint32, DataUint64:
		return strconv.FormatUint(v.Uint, 10), nil
	case DataBool:
		return "", fmt.Errorf("%w: boolean", ErrNoText)
	}
	return "", fmt.Errorf("%w: data type %d", ErrNoText, v.Kind)
}

// String renders a value for display (test output, logs): its Text, or for a value
// without one its kind in angle brackets, e.g. <bool true>, which no text value equals.
func (v Value) String() string {
	if s, err := v.Text(); err == nil {
		return s
	}
	if v.Kind == DataBool {
		return fmt.Sprintf("<bool %t>", v.Bool)
	}
	return fmt.Sprintf("<data type %d>", v.Kind)
}

// Str, Bin, Addr, Uint32, Int64 and Bool build values to encode (a client's NOTIFY
// arguments, an ACK's variables).
func Str(s string) Value { return Value{Kind: DataString, Bytes: []byte(s)} }

// Bin builds a binary value.
func Bin(b []byte) Value { return Value{Kind: DataBinary, Bytes: b} }

// Addr builds an IPv4 or IPv6 value.
func Addr(a netip.Addr) Value {
	k := DataIPv6
	if a.Is4() {
		k = DataIPv4
	}
	return Value{Kind: k, Addr: a}
}

// Uint32 builds a uint32 value.
func Uint32(n uint32) Value { return Value{Kind: DataUint32, Uint: uint64(n)} }

// Int64 builds an int64 value.
func Int64(n int64) Value { return Value{Kind: DataInt64, Int: n, Uint: uint64(n)} }

// Bool builds a boolean value.
func Bool(t bool) Value { return Value{Kind: DataBool, Bool: t} }

// AppendValue appends v as typed data.
func AppendValue(b []byte, v Value) []byte {
	switch v.Kind {
	case DataString, DataBinary:
		return append(AppendVarint(append(b, v.Kind), uint64(len(v.Bytes))), v.Bytes...)
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

// ReadValue decodes one typed datum at the start of b.
func ReadValue(b []byte) (Value, int, error) {
	if len(b) == 0 {
		return Value{}, 0, ErrShort
	}
	v := Value{Kind: b[0] & 0x0F}
	flags := b[0] >> 4
	switch v.Kind {
	case DataNull:
		return v, 1, nil
	case DataBool:
		v.Bool = flags&1 == 1
		return v, 1, nil
	case DataInt32, DataInt64, DataUint32, DataUint64:
		n, l, err := Varint(b[1:])
		if err != nil {
			return Value{}, 0, err
		}
		v.Uint, v.Int = n, int64(n)
		if v.Kind == DataInt32 {
			v.Int = int64(int32(uint32(n)))
		}
		return v, 1 + l, nil
	case DataIPv4:
		if len(b) < 5 {
			return Value{}, 0, ErrShort
		}
		v.Addr = netip.AddrFrom4([4]byte(b[1:5]))
		return v, 5, nil
	case DataIPv6:
		if len(b) < 17 {
			return Value{}, 0, ErrShort
		}
		v.Addr = netip.AddrFrom16([16]byte(b[1:17]))
		return v, 17, nil
	case DataString, DataBinary:
		n, l, err := Varint(b[1:])
		if err != nil {
			return Value{}, 0, err
		}
		end := 1 + l + int(n)
		if n > uint64(len(b)) || end > len(b) {
			return Value{}, 0, ErrShort
		}
		v.Bytes = b[1+l : end]
		return v, end, nil
	}
	return Value{}, 0, fmt.Errorf("spop: unknown data type %d", v.Kind)
}

// AppendString appends a string typed datum.
func AppendString(b []byte, s string) []byte {
	b = append(b, DataString)
	b = AppendVarint(b, uint64(len(s)))
	return append(b, s...)
}

// AppendUint32 appends a uint32 typed datum.
func AppendUint32(b []byte, n uint32) []byte {
	return AppendVarint(append(b, DataUint32), uint64(n))
}

// AppendBool appends a boolean typed datum.
func AppendBool(b []byte, t bool) []byte {
	if t {
		return append(b, DataBool|0x10)
	}
	return append(b, DataBool)
}

// AppendAddr appends an IPv4 or IPv6 typed datum.
func AppendAddr(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		a4 := a.As4()
		return append(append(b, DataIPv4), a4[:]...)
	}
	a16 := a.As16()
	return append(append(b, DataIPv6), a16[:]...)
}

// AppendName appends a length-prefixed name (KV key, message, argument or variable name).
func AppendName(b []byte, s string) []byte {
	b = AppendVarint(b, uint64(len(s)))
	return append(b, s...)
}

// readName decodes a length-prefixed name.
func readName(b []byte) ([]byte, int, error) {
	n, l, err := Varint(b)
	if err != nil {
		return nil, 0, err
	}
	if n > uint64(len(b)-l) {
		return nil, 0, ErrShort
	}
	return b[l : l+int(n)], l + int(n), nil
}

// Header is the fixed part of every frame after its length.
type Header struct {
	Type     byte
	Flags    uint32
	StreamID uint64
	FrameID  uint64
}

// AppendHeader starts a frame: 4 length bytes to patch with Finish, then the header.
func AppendHeader(b []byte, h Header) []byte {
	b = append(b, 0, 0, 0, 0, h.Type)
	b = binary.BigEndian.AppendUint32(b, h.Flags)
	b = AppendVarint(b, h.StreamID)
	return AppendVarint(b, h.FrameID)
}

// Finish writes the length of the frame that starts at b[start:].
func Finish(b []byte, start int) []byte {
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

// ReadHeader decodes a frame body (without its 4 length bytes) into its header and payload.
func ReadHeader(body []byte) (Header, []byte, error) {
	if len(body) < MinFrameLen {
		return Header{}, nil, fmt.Errorf("spop: frame of %d bytes is shorter than a header", len(body))
	}
	h := Header{Type: body[0], Flags: binary.BigEndian.Uint32(body[1:5])}
	rest := body[5:]
	var l int
	var err error
	if h.StreamID, l, err = Varint(rest); err != nil {
		return Header{}, nil, fmt.Errorf("spop: stream id: %w", err)
	}
	rest = rest[l:]
	if h.FrameID, l, err = Varint(rest); err != nil {
		return Header{}, nil, fmt.Errorf("spop: frame id: %w", err)
	}
	return h, rest[l:], nil
}
