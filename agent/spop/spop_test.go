package spop

import (
	"bufio"
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

func TestText(t *testing.T) {
	tests := []struct {
		v       Value
		want    string
		wantErr bool
	}{
		{Value{Kind: DataNull}, "", false},
		{Str("alice"), "alice", false},
		{Bin([]byte{'b', 0}), "b\x00", false},
		{Addr(netip.MustParseAddr("192.0.2.1")), "192.0.2.1", false},
		{Addr(netip.MustParseAddr("::ffff:192.0.2.1")), "192.0.2.1", false},
		{Addr(netip.MustParseAddr("2001:db8::1")), "2001:db8::1", false},
		{Value{Kind: DataInt32, Int: -7}, "-7", false},
		{Int64(-1 << 40), "-1099511627776", false},
		{Uint32(1 << 31), "2147483648", false},
		{Value{Kind: DataUint64, Uint: 1 << 63}, "9223372036854775808", false},
		{Bool(true), "", true},
		{Bool(false), "", true},
		{Value{Kind: 12}, "", true},
	}
	for _, tt := range tests {
		got, err := tt.v.Text()
		if got != tt.want || (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrNoText)) {
			t.Errorf("%v.Text() = %q, %v; want %q (error: %v, ErrNoText)", tt.v, got, err, tt.want, tt.wantErr)
		}
		if s := tt.v.String(); !tt.wantErr && s != tt.want {
			t.Errorf("%v.String() = %q; want Text's %q", tt.v, s, tt.want)
		}
	}
	if s := Bool(true).String(); s != "<bool true>" {
		t.Errorf("Bool(true).String() = %q; want <bool true>, never a text value", s)
	}
}

func TestActionsRoundTrip(t *testing.T) {
	var b []byte
	b = AppendSetVar(b, ScopeTransaction, "status", Str("hit"))
	whole := map[int]bool{0: true, len(b): true} // where a cut falls between actions
	b = AppendName(append(b, ActionUnsetVar, 2, ScopeTransaction), "old")
	whole[len(b)] = true
	b = AppendSetVar(b, ScopeTransaction, "n", Uint32(5))
	acts, err := ReadActions(b)
	if err != nil || len(acts) != 3 {
		t.Fatalf("ReadActions = %+v, %v; want 3 actions", acts, err)
	}
	if string(acts[0].Name) != "status" || acts[0].Value.String() != "hit" || string(acts[2].Name) != "n" || acts[2].Value.String() != "5" {
		t.Errorf("actions %+v; want set-var status=hit and n=5", acts)
	}
	if string(acts[1].Name) != "old" || acts[1].Type != ActionUnsetVar {
		t.Errorf("second action %+v; want unset-var old", acts[1])
	}
	if n := testing.AllocsPerRun(100, func() {
		for p := b; len(p) > 0; {
			_, l, err := ReadAction(p)
			if err != nil {
				t.Fatal(err)
			}
			p = p[l:]
		}
	}); n != 0 {
		t.Errorf("ReadAction allocates %v times; want 0", n)
	}
	for i := range len(b) {
		if _, err := ReadActions(b[:i]); err == nil && !whole[i] {
			t.Errorf("ReadActions of %d of %d bytes: no error", i, len(b))
		}
	}
}

func TestPeekAndReadFrame(t *testing.T) {
	f := AppendNotify(nil, 3, 1, Message{Name: "m"})
	stream := append(append([]byte(nil), f...), f...)
	r := bufio.NewReaderSize(bytes.NewReader(stream), 64)
	for range 2 {
		body, err := PeekFrame(r, 100)
		if err != nil || !bytes.Equal(body, f[4:]) {
			t.Fatalf("PeekFrame = % x, %v; want % x", body, err, f[4:])
		}
		r.Discard(4 + len(body))
	}
	for _, tt := range []struct {
		name  string
		frame []byte
		max   uint32
	}{
		{"too short", []byte{0, 0, 0, MinFrameLen - 1, 3, 0, 0, 0, 1, 1}, 100},
		{"above max", f, uint32(len(f) - 5)},
		{"above the buffer", append([]byte{0, 0, 0, 80}, make([]byte, 80)...), 100},
	} {
		if _, err := PeekFrame(bufio.NewReaderSize(bytes.NewReader(tt.frame), 16), tt.max); err == nil {
			t.Errorf("PeekFrame(%s): no error", tt.name)
		}
		if tt.name == "above the buffer" {
			continue // ReadFrame has no buffer limit
		}
		if _, err := ReadFrame(bytes.NewReader(tt.frame), nil, tt.max); err == nil {
			t.Errorf("ReadFrame(%s): no error", tt.name)
		}
	}
	if body, err := ReadFrame(bytes.NewReader(f), nil, 100); err != nil || !bytes.Equal(body, f[4:]) {
		t.Errorf("ReadFrame = % x, %v; want % x", body, err, f[4:])
	}
}
