package agent

// This file is the agent's whole contact surface with negasus/haproxy-spoe-go (v1.0.7), the
// SPOP server library, and the list of what the agent relies on in it that the library does
// not promise. Each assumption says what breaks if an upgrade changes it, and is pinned by a
// test in negasus_test.go that drives the real library over a loopback connection with
// frames built by agent/spop: an upgrade that changes one fails that test by name.
//
//  1. Frames are decoded on the caller's goroutine (serveLibrary).
//  2. Read's io.EOF at a frame boundary is a clean end; in-flight ACKs are written, then the
//     connection is closed (serveLibrary).
//  3. The frame length is trusted (minFrameLen).
//  4. HELLO and DISCONNECT items are type-asserted unchecked (checkItems).
//  5. The AGENT-HELLO echoes HAProxy's max-frame-size and announces pipelining
//     (negotiatedFrameSize).
//  6. Every frame is handed to Write whole, in one call (isAck).
//  7. Every NOTIFY gets its own goroutine and exactly one ACK (takesToken).
//  8. Typed data arrive as fixed Go types (argText, argBody, argBool).
//  9. Decoded values live until the handler returns, not longer (argText, argBody).
//  10. set-var values other than strings panic or stall the stream (setVar).
//  11. A healthcheck HELLO is answered and the connection closed (serveLibrary).
//
// One behaviour needs no pin because nothing breaks either way: the library writes the ACKs
// of a connection from several goroutines at once without serializing them, and
// guardConn.Write serializes them itself.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/negasus/haproxy-spoe-go/action"
	"github.com/negasus/haproxy-spoe-go/logger"
	"github.com/negasus/haproxy-spoe-go/request"
	"github.com/negasus/haproxy-spoe-go/worker"

	"github.com/stickyseat/stickyseat/agent/spop"
)

// serveLibrary runs the library's loop for one connection, answering each NOTIFY with h,
// and returns when the connection has ended.
//
// Assumption 1: the library reads and decodes every frame on the goroutine that calls
// worker.Handle, and its decoder slices unchecked, so a malformed NOTIFY panics there.
// serveConn's recover turns that into one closed connection. If decoding moved to a
// goroutine of the library's own, a malformed NOTIFY would crash the process: the guard
// would then have to decode every NOTIFY (spop.ReadMessages) before letting it through.
// Pinned by TestNegasusDecodesOnTheCallersGoroutine.
//
// Assumption 2: when Read returns io.EOF at a frame boundary the library logs nothing, waits
// for every NOTIFY in flight, writes their ACKs, closes the connection and returns; a
// HAPROXY-DISCONNECT ends it the same way after the AGENT-DISCONNECT. Shutdown
// (guardConn.shutdown) and the quiet end of a reset between frames return io.EOF and count
// on it: otherwise the ACKs of the last messages would be lost at shutdown, or every normal
// end logged as an error. The library closes the connection however it ends, which
// releases a reader waiting for an in-flight slot (guardConn.done). Pinned by
// TestNegasusEndsCleanlyAfterInFlightAcks.
//
// Assumption 11: a HAPROXY-HELLO with healthcheck=true gets its AGENT-HELLO, then the library
// closes the connection: HAProxy 3.1+'s "option spop-check" expects exactly that. Pinned by
// TestNegasusHealthcheckHelloCloses.
func serveLibrary(c net.Conn, h func(*request.Request), log logger.Logger) {
	worker.Handle(c, h, log)
}

// minFrameLen is the shortest frame length the guard lets through.
//
// Assumption 3: the library trusts a frame's 4-byte length: 0 makes it allocate 4 GiB
// (length-1 wraps around), 1 to 6 make it slice past the end of the header and panic. A
// header (type, flags, one-byte stream and frame ids) is 7 bytes, so the guard refuses
// anything shorter, and anything longer than the negotiated max-frame-size. If the library
// came to check lengths itself, the guard's check would only be redundant; if the smallest
// length it survives grew, frames the guard passes would panic it. Pinned by
// TestNegasusTrustsTheFrameLength.
const minFrameLen = spop.MinFrameLen

// checkItems refuses the items of a HAPROXY-HELLO or HAPROXY-DISCONNECT that the library
// would assert to another type.
//
// Assumption 4: the library type-asserts healthcheck (bool), max-frame-size (uint32) and
// engine-id (string) in both frames without checking, so another type panics its reader.
// The guard reads these frames whole and checks them first. If the library asserted more
// items, or other types, a HELLO the guard passes could panic it. Pinned by
// TestNegasusAssertsItemTypes.
func checkItems(kvs []spop.KV) error {
	for _, kv := range kvs {
		want, ok := assertedItems[kv.Name]
		if ok && kv.Value.Kind != want {
			return fmt.Errorf("item %q has data type %d, want %d", kv.Name, kv.Value.Kind, want)
		}
	}
	return nil
}

// assertedItems are the items the library asserts, with the data type it asserts.
var assertedItems = map[string]byte{
	"healthcheck":    spop.DataBool,
	"max-frame-size": spop.DataUint32,
	"engine-id":      spop.DataString,
}

// negotiatedFrameSize is the max-frame-size in force once HAProxy offered offered.
//
// Assumption 5: the library's AGENT-HELLO repeats the max-frame-size of the HAPROXY-HELLO
// (and announces the pipelining capability, without which HAProxy sends one frame at a
// time). The guard learns the size from the HELLO it reads and enforces it on every later
// frame. If the library announced a smaller size, the guard would let through frames
// larger than the one negotiated. Pinned by TestNegasusAgentHello.
func negotiatedFrameSize(offered uint32) uint32 { return offered }

// isAck reports whether p, one call's worth of bytes from the library, is an ACK frame.
//
// Assumption 6: the library encodes each frame (AGENT-HELLO, ACK, AGENT-DISCONNECT) whole
// and hands it to Write in one call. guardConn.Write counts the ACKs it writes from the
// type byte after the length, and writes each call's bytes in one write(2), since HAProxy
// 3.2 and later reset a connection whose AGENT-HELLO arrives in pieces. If frames came in
// pieces, ACKs would go uncounted, so a connection would stall after MaxInFlight messages,
// and the AGENT-HELLO would reach HAProxy cut. Pinned by TestNegasusOneFramePerWrite.
func isAck(p []byte) bool { return len(p) > 4 && p[4] == spop.TypeAck }

// takesToken reports whether a frame of type typ takes an in-flight slot until its ACK is
// written.
//
// Assumption 7: the library runs the handler of every NOTIFY on a goroutine of its own and
// answers every NOTIFY with exactly one ACK, even one that sets nothing (a message the
// agent ignores). The guard takes a slot per NOTIFY it lets through and gives it back when
// the ACK is written: a NOTIFY left unanswered would hold its slot for good (the connection
// stalls after MaxInFlight of them), and if handlers ran one at a time, pipelined streams
// would wait behind one slow decision. Pinned by TestNegasusGoroutineAndAckPerNotify.
func takesToken(typ byte) bool { return typ == spop.TypeNotify }

// errArgType marks an argument whose typed value cannot be a key or pool name.
var errArgType = errors.New("unsupported argument type")

// argText renders a message argument as text by spop.Value.Text, the one rule for it.
//
// Assumption 8: the library decodes typed data into nil (null), bool, int32, uint32, int64,
// uint64, net.IP (IPv4 as 4 bytes, IPv6 as 16), string and []byte (binary). argText maps
// each back to its data type; a type it does not know is an unsupported argument, so if the
// library changed one (net.IP to netip.Addr, say), every key of that type would be answered
// invalid. Pinned by TestNegasusArgumentTypes, which also checks that argText and
// spop.Value.Text agree on every data type.
//
// Assumption 9: a decoded value stays intact until its handler returns, even while the
// library decodes the connection's next frames, and no longer: then the library recycles
// the request and its messages. So the agent reads arguments in place during the handler
// and keeps only copies: the string argText returns never aliases the library's buffers.
// Pinned by TestNegasusValuesLiveUntilTheHandlerReturns.
func argText(v any) (string, error) {
	var val spop.Value
	switch v := v.(type) {
	case string:
		return v, nil // the text of a string is itself (Text would copy it to []byte and back)
	case []byte:
		val = spop.Value{Kind: spop.DataBinary, Bytes: v}
	case nil:
		val = spop.Value{Kind: spop.DataNull}
	case net.IP:
		switch len(v) {
		case net.IPv4len:
			val = spop.Value{Kind: spop.DataIPv4, Addr: netip.AddrFrom4([4]byte(v))}
		case net.IPv6len:
			val = spop.Value{Kind: spop.DataIPv6, Addr: netip.AddrFrom16([16]byte(v))}
		default:
			return "", fmt.Errorf("%w: address of %d bytes", errArgType, len(v))
		}
	case int32:
		val = spop.Value{Kind: spop.DataInt32, Int: int64(v)}
	case int64:
		val = spop.Value{Kind: spop.DataInt64, Int: v}
	case uint32:
		val = spop.Value{Kind: spop.DataUint32, Uint: uint64(v)}
	case uint64:
		val = spop.Value{Kind: spop.DataUint64, Uint: v}
	case bool:
		val = spop.Value{Kind: spop.DataBool, Bool: v}
	default:
		return "", fmt.Errorf("%w %T", errArgType, v)
	}
	s, err := val.Text()
	if err != nil {
		return "", fmt.Errorf("%w: %w", errArgType, err)
	}
	return s, nil
}

// argBody returns the body argument's bytes, read in place (assumptions 8 and 9: valid
// until the handler returns; the key extractors keep nothing of them). ok is false for a
// type a body cannot have.
func argBody(v any) (body []byte, ok bool) {
	switch v := v.(type) {
	case []byte:
		return v, true
	case string:
		return []byte(v), true
	case nil:
		return nil, true
	}
	return nil, false
}

// argBool returns a boolean argument (assumption 8); ok is false for any other type.
func argBool(v any) (b, ok bool) {
	b, ok = v.(bool)
	return b, ok
}

// setVar adds a set-var action in the transaction scope to the answer.
//
// Assumption 10: the library encodes a Go string as string typed data, which is all the
// agent sends. It encodes ints through an 8-byte buffer, so a negative or large one panics
// on the goroutine writing the ACK, where nothing can recover it and the process dies; a
// float or net.IP fails to encode and the ACK is never written, so HAProxy's stream waits
// for its timeout. Taking only strings keeps the agent clear of both. Pinned by
// TestNegasusSetVarEncoding.
func setVar(req *request.Request, name, value string) {
	req.Actions.SetVar(action.ScopeTransaction, name, value)
}
