package spop

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

func TestVarint(t *testing.T) {
	// Encodings from SPOE.txt's table: each range boundary.
	tests := []struct {
		n    uint64
		want []byte
	}{
		{0, []byte{0x00}},
		{239, []byte{0xEF}},
		{240, []byte{0xF0, 0x00}},
		{2287, []byte{0xFF, 0x7F}},
		{2288, []byte{0xF0, 0x80, 0x00}},
		{264431, []byte{0xFF, 0xFF, 0x7F}},
		{264432, []byte{0xF0, 0x80, 0x80, 0x00}},
	}
	for _, tt := range tests {
		got := AppendVarint(nil, tt.n)
		if !bytes.Equal(got, tt.want) {
			t.Errorf("AppendVarint(%d) = % x; want % x", tt.n, got, tt.want)
		}
		n, l, err := Varint(append(got, 0xAA))
		if err != nil || n != tt.n || l != len(tt.want) {
			t.Errorf("Varint(% x) = %d, %d, %v; want %d, %d", got, n, l, err, tt.n, len(tt.want))
		}
	}
	for _, b := range [][]byte{nil, {0xF0}, {0xFF, 0x80}, bytes.Repeat([]byte{0xFF}, 12)} {
		if _, _, err := Varint(b); !errors.Is(err, ErrShort) {
			t.Errorf("Varint(% x) error = %v; want ErrShort", b, err)
		}
	}
}

func TestValueRoundTrip(t *testing.T) {
	vals := []Value{
		Str("alice"), Bin([]byte{0, 1, 2}), Addr(netip.MustParseAddr("127.0.0.11")),
		Addr(netip.MustParseAddr("2001:db8::1")), Uint32(1 << 31), Int64(-5), Bool(true), Bool(false), {Kind: DataNull},
	}
	for _, v := range vals {
		b := AppendValue(nil, v)
		got, n, err := ReadValue(b)
		if err != nil || n != len(b) || got.String() != v.String() || got.Kind != v.Kind {
			t.Errorf("ReadValue(AppendValue(%v)) = %v (%d of %d bytes), %v", v, got, n, len(b), err)
		}
		// Every strict prefix is an error, never a panic or a wrong value.
		for i := 0; i < len(b); i++ {
			if v.Kind == DataNull || v.Kind == DataBool {
				break
			}
			if _, _, err := ReadValue(b[:i]); err == nil {
				t.Errorf("ReadValue(% x) of a cut %v: no error", b[:i], v)
			}
		}
	}
}

func TestNotifyRoundTrip(t *testing.T) {
	m := Message{Name: "stickyseat", Args: []KV{{Name: "key", Value: Str("u1")}, {Name: "body", Value: Bin([]byte("<x/>"))}}}
	f := AppendNotify(nil, 7, 3, m)
	h, payload, err := ReadHeader(f[4:])
	if err != nil || h.Type != TypeNotify || h.StreamID != 7 || h.FrameID != 3 {
		t.Fatalf("ReadHeader = %+v, %v", h, err)
	}
	msgs, err := ReadMessages(payload)
	if err != nil || len(msgs) != 1 || msgs[0].Name != "stickyseat" || len(msgs[0].Args) != 2 || msgs[0].Args[1].Value.String() != "<x/>" {
		t.Errorf("ReadMessages = %+v, %v", msgs, err)
	}
}

// FuzzDecoders feeds arbitrary bytes to every decoder the agent's guard relies on.
func FuzzDecoders(f *testing.F) {
	f.Add(AppendHello(nil, 16380, true)[4:])
	f.Add(AppendNotify(nil, 1, 1, Message{Name: "stickyseat", Args: []KV{{Name: "key", Value: Str("u")}}})[4:])
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, payload, err := ReadHeader(b); err == nil {
			ReadKVs(payload)
			ReadMessages(payload)
			ReadActions(payload)
		}
		ReadKVs(b)
		ReadValue(b)
	})
}
