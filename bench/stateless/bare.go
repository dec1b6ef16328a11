package main

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"

	"github.com/stickyseat/stickyseat/agent"
	"github.com/stickyseat/stickyseat/agent/spop"
	"github.com/stickyseat/stickyseat/assign"
)

// serveBare answers on ln with the smallest SPOP responder this package can write: no
// library, one goroutine per connection that decodes the frames as they arrive, appends
// each answer to a buffer and writes it when no whole frame is left to read. It is not an
// agent to run (no limits, no deadlines); it measures what the machine and the load tool
// allow, so that the other layers' latency can be read against it.
func serveBare(ctx context.Context, ln net.Listener, servers []string) error {
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for c := range conns {
			c.Close()
		}
	})
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			bareConn(c, servers)
			c.Close()
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
	}
}

// bareMaxFrame is the max-frame-size the bare responder announces; its read buffer holds one.
const bareMaxFrame = 16380

// bareConn serves one connection until it ends or sends something unexpected.
func bareConn(c net.Conn, servers []string) {
	br := bufio.NewReaderSize(c, 4+bareMaxFrame)
	var out []byte
	for {
		body, err := spop.PeekFrame(br, bareMaxFrame)
		if err != nil {
			return
		}
		h, payload, err := spop.ReadHeader(body)
		if err != nil {
			return
		}
		start := len(out)
		switch h.Type {
		case spop.TypeHAProxyHello:
			out = spop.AppendAgentHello(out, bareMaxFrame, "pipelining")
		case spop.TypeHAProxyDisconnect:
			c.Write(spop.AppendDisconnect(out, spop.TypeAgentDisconnect, 0, "bye"))
			return
		case spop.TypeNotify:
			msgs, err := spop.ReadMessages(payload)
			if err != nil {
				return
			}
			out = spop.AppendHeader(out, spop.Header{Type: spop.TypeAck, Flags: spop.FlagFin, StreamID: h.StreamID, FrameID: h.FrameID})
			out = spop.Finish(appendBareAnswer(out, msgs, servers), start)
		default:
			return
		}
		br.Discard(4 + len(body))
		if br.Buffered() < 4 || h.Type == spop.TypeHAProxyHello {
			if _, err := c.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
	}
}

// appendBareAnswer appends the set-var actions answering the stickyseat message, like the
// other layers: status=hit and the server the key hashes to, or status=invalid without a key.
func appendBareAnswer(b []byte, msgs []spop.Message, servers []string) []byte {
	for _, m := range msgs {
		if m.Name != agent.MessageName {
			continue
		}
		for _, a := range m.Args {
			if a.Name == agent.ArgKey && len(a.Value.Bytes) > 0 {
				b = spop.AppendSetVar(b, spop.ScopeTransaction, agent.VarStatus, spop.Str(assign.StatusHit.String()))
				return spop.AppendSetVar(b, spop.ScopeTransaction, agent.VarServer, spop.Str(servers[fnv1a(a.Value.Bytes)%uint64(len(servers))]))
			}
		}
		return spop.AppendSetVar(b, spop.ScopeTransaction, agent.VarStatus, spop.Str(assign.StatusInvalid.String()))
	}
	return b
}
