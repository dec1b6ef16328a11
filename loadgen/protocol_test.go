package loadgen

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/agent/spop"
)

// fakeAgent answers HELLO properly, then every NOTIFY with what answer returns (nil: no
// answer at all; a closed connection when answer returns io.EOF's text).
func fakeAgent(t *testing.T, hello []byte, answer func(h spop.Header) []byte) string {
	t.Helper()
	return serve(t, func(ctx context.Context, ln net.Listener) error {
		var wg sync.WaitGroup
		defer wg.Wait()
		var mu sync.Mutex
		var conns []net.Conn
		stop := context.AfterFunc(ctx, func() {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		})
		defer stop()
		for {
			c, err := ln.Accept()
			if err != nil {
				return nil
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				for first := true; ; first = false {
					body, err := spop.ReadFrame(r, nil, 1<<20)
					if err != nil {
						return
					}
					h, _, err := spop.ReadHeader(body)
					if err != nil {
						return
					}
					var out []byte
					switch {
					case first:
						out = hello
					case h.Type == spop.TypeNotify:
						out = answer(h)
						if string(out) == "close" {
							return
						}
					}
					if out != nil {
						if _, err := c.Write(out); err != nil {
							return
						}
					}
				}
			}()
		}
	})
}

func agentHello(version, caps string) []byte {
	b := spop.AppendHeader(nil, spop.Header{Type: spop.TypeAgentHello, Flags: spop.FlagFin})
	b = spop.AppendKV(b, "version", spop.AppendString(nil, version))
	b = spop.AppendKV(b, "max-frame-size", spop.AppendUint32(nil, 16380))
	b = spop.AppendKV(b, "capabilities", spop.AppendString(nil, caps))
	return spop.Finish(b, 0)
}

// ackFrame builds an ACK setting vars (name, value) in the transaction scope.
func ackFrame(h spop.Header, vars ...any) []byte {
	b := spop.AppendHeader(nil, spop.Header{Type: spop.TypeAck, Flags: spop.FlagFin, StreamID: h.StreamID, FrameID: h.FrameID})
	for i := 0; i < len(vars); i += 2 {
		switch v := vars[i+1].(type) {
		case string:
			b = spop.AppendSetVar(b, spop.ScopeTransaction, vars[i].(string), spop.Str(v))
		case uint32:
			b = spop.AppendSetVar(b, spop.ScopeTransaction, vars[i].(string), spop.Uint32(v))
		}
	}
	return spop.Finish(b, 0)
}

func TestRunProtocolErrors(t *testing.T) {
	good := agentHello("2.0", "pipelining,async")
	tests := []struct {
		name   string
		hello  []byte
		answer func(h spop.Header) []byte
		want   string
	}{
		{"garbage", good, func(spop.Header) []byte { return []byte("garbage!") }, "frame length"},
		{"status as an int", good, func(h spop.Header) []byte { return ackFrame(h, "status", uint32(1)) }, "status of data type 3, want string"},
		{"unknown status", good, func(h spop.Header) []byte { return ackFrame(h, "status", "maybe") }, `unknown status "maybe"`},
		{"no status", good, func(h spop.Header) []byte { return ackFrame(h, "server", "s1") }, "sets no status"},
		{"seated without server", good, func(h spop.Header) []byte { return ackFrame(h, "status", "new") }, `status new with server ""`},
		{"server when full", good, func(h spop.Header) []byte { return ackFrame(h, "status", "full", "server", "s1") }, `status full with server "s1"`},
		{"unknown stream", good, func(h spop.Header) []byte {
			h.StreamID += 1000
			return ackFrame(h, "status", "hit", "server", "s1")
		}, "has no request in flight"},
		{"closed", good, func(spop.Header) []byte { return []byte("close") }, "read: EOF"},
		{"silent", good, func(spop.Header) []byte { return nil }, "no answer within"},
		{"disconnect", good, func(spop.Header) []byte {
			return spop.AppendDisconnect(nil, spop.TypeAgentDisconnect, 3, "bye")
		}, `agent disconnected: status 3 "bye"`},
		{"bad hello version", agentHello("1.0", "pipelining"), nil, `AGENT-HELLO version "1.0"`},
		{"hello of the wrong type", ackFrame(spop.Header{}, "status", "hit"), nil, "want AGENT-HELLO"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeAgent(t, tt.hello, tt.answer)
			res, err := Run(context.Background(), Options{Addr: addr, Requests: 100, Connections: 2, Timeout: 300 * time.Millisecond})
			if err == nil || !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v; want an ErrProtocol mentioning %q", err, tt.want)
			}
			if res != nil && res.Decisions > 0 {
				t.Errorf("%d decisions counted from a misbehaving agent", res.Decisions)
			}
		})
	}
}

// An agent that does not announce pipelining gets one frame at a time, as from HAProxy.
func TestRunWithoutPipelining(t *testing.T) {
	var mu sync.Mutex
	inFlight, most := 0, 0
	addr := fakeAgent(t, agentHello("2.0", "async"), func(h spop.Header) []byte {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		inFlight--
		mu.Unlock()
		return ackFrame(h, "status", "hit", "server", "s1")
	})
	res, err := Run(context.Background(), Options{Addr: addr, Requests: 50, Connections: 1, Pipeline: 20})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Statuses["hit"] != 50 {
		t.Errorf("statuses %v; want hit=50", res.Statuses)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 100000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := time.Duration(q*100000) * time.Microsecond
		got := h.Quantile(q)
		if diff := float64(got-want) / float64(want); diff > 0.02 || diff < -0.02 {
			t.Errorf("Quantile(%g) = %s; want %s within 2%%", q, got, want)
		}
	}
	if h.Max() != 100*time.Millisecond || h.Count() != 100000 {
		t.Errorf("Max, Count = %s, %d; want 100ms, 100000", h.Max(), h.Count())
	}
	var small Histogram
	small.Record(37)
	if got := small.Quantile(0.99); got != 37 {
		t.Errorf("one value of 37ns: p99 = %d; want 37", got)
	}
	for v := int64(0); v < 1<<20; v = v*3/2 + 1 {
		if mid := bucketMid(bucket(v)); float64(mid-v) > float64(v)/64+1 || float64(v-mid) > float64(v)/64+1 {
			t.Errorf("value %d lands in a bucket centred on %d", v, mid)
		}
	}
}
