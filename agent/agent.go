// Package agent is the SPOP side of stickyseat: it serves HAProxy's SPOE connections with
// negasus/haproxy-spoe-go, guarded against hostile frames, turns each "stickyseat" message
// into an assign.Request and answers with txn.stickyseat.* variables.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/internal/ratelimit"
)

// MessageName is the SPOE message the agent answers; others are ignored.
const MessageName = "stickyseat"

// Variable names, set in the transaction scope; HAProxy prefixes them with the SPOE
// agent's var-prefix, so HAProxy reads txn.stickyseat.status and txn.stickyseat.server.
const (
	VarStatus = "status"
	VarServer = "server"
	// VarPosition is a queued user's place in the pool's line, "1" for the next one seated.
	VarPosition = "position"
	// VarWait is a queued user's estimated wait in whole seconds, when there is an estimate.
	VarWait = "wait"
)

// Decider makes one seat decision. It must be safe for concurrent use and must not panic
// on any request; a failure is reported in the Decision. A Decider that also has a
// NeverBlocks() bool method returning true is given no deadline (Options.DecisionTimeout):
// it promises never to wait.
type Decider interface {
	Decide(ctx context.Context, req assign.Request) assign.Decision
}

// Options tune an Agent; the zero value of each field means its default.
type Options struct {
	// DecisionTimeout bounds one decision of a decider that may block; keep it below the
	// SPOE "timeout processing". Default 500ms.
	DecisionTimeout time.Duration
	// MaxFrameSize is the largest max-frame-size the agent accepts from HAProxy. Default
	// 1 MiB, enough for tune.bufsize up to 1 MiB when bodies are sent.
	MaxFrameSize uint32
	// ShutdownGrace is how long a frame already begun may take to arrive after shutdown
	// starts. Default 2s.
	ShutdownGrace time.Duration
	// IdleTimeout closes a connection that sends no frame for this long; keep it above the
	// SPOE "timeout idle" (HAProxy closes its idle connections first). Default 5m.
	IdleTimeout time.Duration
	// FrameTimeout bounds how long the rest of a frame may take once its length has
	// arrived. Default 10s.
	FrameTimeout time.Duration
	// WriteTimeout bounds writing one answer; a peer that stops reading loses its
	// connection. Default 10s.
	WriteTimeout time.Duration
	// MaxInFlight is how many messages of one connection are answered at once; the
	// connection's next frame waits beyond it. Default 256: HAProxy pipelines up to
	// max-waiting-frames (20 by default) before 3.1, and at most 20 streams per
	// connection from 3.1 on (the setting is ignored there), so the default never makes
	// HAProxy wait.
	MaxInFlight int
	// MaxConnections is how many SPOP connections the agent serves at once; beyond, a
	// newcomer closes the connection idle the longest (one that never sent a NOTIFY
	// first), or is refused when every connection is busy. Default 1024. Every HAProxy reload opens a burst of new
	// connections while the old process still holds its own: leave room for both.
	MaxConnections int
	// HelloTimeout closes a connection that has not sent its whole HAPROXY-HELLO this
	// long after it was accepted, so silent peers cannot hold every connection slot.
	// HAProxy sends its HELLO at once. Default 5s.
	HelloTimeout time.Duration
	// KeyRules say, per pool name, where the key comes from when the key argument is
	// absent or empty; the rule under "" applies to pools not listed. No rule: such a
	// message is answered invalid.
	KeyRules map[string]KeyRule
	// OnDecision, when set, is told of every answer (metrics): the pool decided in (empty
	// when unknown), the status and how long the decision took. It must be fast and safe
	// for concurrent use.
	OnDecision func(d assign.Decision, took time.Duration)
	// Logger receives lifecycle events; per-message lines are Debug only.
	Logger zerolog.Logger
}

func (o *Options) setDefaults() {
	if o.DecisionTimeout <= 0 {
		o.DecisionTimeout = 500 * time.Millisecond
	}
	if o.MaxFrameSize == 0 {
		o.MaxFrameSize = 1 << 20
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = 2 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 5 * time.Minute
	}
	if o.FrameTimeout <= 0 {
		o.FrameTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 256
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 1024
	}
	if o.HelloTimeout <= 0 {
		o.HelloTimeout = 5 * time.Second
	}
}

// logInterval is the least time between two log lines of one kind about connections
// (refused, closed for a bad frame or a silent peer, crashed): a flood logs one a second
// with the count of those held back.
const logInterval = time.Second

// Waits between retries of a failing accept, doubling from the least to the most (as
// net/http's Server does).
const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

// temporaryAcceptError reports whether accepting may work again later: a timeout, or the
// process or system out of file descriptors or buffers.
func temporaryAcceptError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.ECONNABORTED)
}

// Agent answers HAProxy's stickyseat messages.
type Agent struct {
	decider Decider
	// neverBlocks: the decider never waits, so decisions get no deadline context.
	neverBlocks bool
	opts        Options
	keyRules    atomic.Pointer[map[string]KeyRule]
	log         zerolog.Logger
	stats       counters
	// Rate limits of the log lines about connections.
	refusedLog, evictedLog, acceptLog, connLog, panicLog *ratelimit.Limiter

	mu    sync.Mutex
	conns map[*guardConn]struct{}
	wg    sync.WaitGroup
}

// New returns an Agent deciding through d.
func New(d Decider, opts Options) *Agent {
	opts.setDefaults()
	a := &Agent{
		decider: d,
		neverBlocks: func() bool {
			nb, ok := d.(interface{ NeverBlocks() bool })
			return ok && nb.NeverBlocks()
		}(),
		opts:       opts,
		log:        opts.Logger.With().Str("component", "agent").Logger(),
		conns:      make(map[*guardConn]struct{}),
		refusedLog: ratelimit.New(logInterval),
		evictedLog: ratelimit.New(logInterval),
		acceptLog:  ratelimit.New(logInterval),
		connLog:    ratelimit.New(logInterval),
		panicLog:   ratelimit.New(logInterval),
	}
	a.SetKeyRules(opts.KeyRules)
	return a
}

// SetKeyRules replaces the key rules (see Options.KeyRules) for every later message; a
// configuration reload calls it.
func (a *Agent) SetKeyRules(rules map[string]KeyRule) {
	m := make(map[string]KeyRule, len(rules))
	for k, v := range rules {
		m[k] = v
	}
	a.keyRules.Store(&m)
}

// Serve accepts SPOP connections on ln until ctx is cancelled, then stops accepting, lets
// every connection finish the messages it has received (their ACKs are written), closes
// them and returns nil. An accept that fails for want of file descriptors or buffers is
// retried after a wait (5ms, doubling up to 1s), logged and counted; Serve returns an
// error only if accepting fails otherwise.
func (a *Agent) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var err error
	var backoff time.Duration
	for {
		var c net.Conn
		c, err = ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				err = nil
				break
			}
			if !temporaryAcceptError(err) {
				break
			}
			// Out of file descriptors (EMFILE, ENFILE) or buffers: connections may close
			// soon, so wait and try again, as net/http does, rather than end the agent.
			backoff = min(max(2*backoff, minAcceptBackoff), maxAcceptBackoff)
			a.stats.acceptErrors.Add(1)
			if ok, held := a.acceptLog.Allow(); ok {
				a.log.Error().Err(err).Dur("retry_in", backoff).Uint64("suppressed", held).
					Msg("accepting an SPOP connection failed; retrying (raise the open files limit, ulimit -n, or lower --max-connections)")
			}
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			continue
		}
		backoff = 0
		a.serveConn(c)
	}
	a.mu.Lock()
	for g := range a.conns {
		g.shutdown()
	}
	a.mu.Unlock()
	a.wg.Wait()
	return err
}

func (a *Agent) serveConn(c net.Conn) {
	a.mu.Lock()
	if len(a.conns) >= a.opts.MaxConnections {
		victim := a.idlest(time.Now())
		if victim == nil {
			a.mu.Unlock()
			a.stats.refusedConns.Add(1)
			if ok, held := a.refusedLog.Allow(); ok {
				a.log.Warn().Str("peer", c.RemoteAddr().String()).Int("max_connections", a.opts.MaxConnections).
					Uint64("suppressed", held).Msg("SPOP connection refused: the connection limit is reached and every connection is busy (see --max-connections)")
			}
			c.Close()
			return
		}
		// The slot is the newcomer's at once; the victim ends at its frame boundary, now.
		delete(a.conns, victim)
		victim.shutdown()
		a.stats.evictedConns.Add(1)
		if ok, held := a.evictedLog.Allow(); ok {
			a.log.Warn().Str("peer", victim.RemoteAddr().String()).Bool("sent_notify", victim.notified.Load()).
				Int("max_connections", a.opts.MaxConnections).Uint64("suppressed", held).
				Msg("SPOP connection limit reached: closed the connection idle the longest to let a new one in (see --max-connections)")
		}
	}
	g := newGuardConn(c, guardLimits{
		maxFrame: a.opts.MaxFrameSize, hello: a.opts.HelloTimeout, grace: a.opts.ShutdownGrace, idle: a.opts.IdleTimeout,
		frame: a.opts.FrameTimeout, write: a.opts.WriteTimeout, maxInFlight: a.opts.MaxInFlight,
	}, &a.stats)
	a.conns[g] = struct{}{}
	a.mu.Unlock()
	a.stats.conns.Add(1)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer func() {
			a.mu.Lock()
			delete(a.conns, g)
			a.mu.Unlock()
		}()
		defer func() {
			// The library decodes frames with unchecked slicing, on this goroutine (negasus.go,
			// assumption 1); a frame that slips past the guard must cost this connection only,
			// never the process.
			if r := recover(); r != nil {
				a.stats.panics.Add(1)
				a.logPanic(r, a.log.Error().Str("peer", c.RemoteAddr().String()), "SPOP connection crashed the decoder; closed it")
				g.Close()
			}
		}()
		a.log.Debug().Str("peer", c.RemoteAddr().String()).Msg("SPOP connection opened")
		serveLibrary(g, a.handle, connLogger{log: a.log, peer: c.RemoteAddr().String(), limit: a.connLog})
		// A reset between frames (HAProxy 3.1+ closing an idle connection) is a normal end.
		a.log.Debug().Str("peer", c.RemoteAddr().String()).Bool("peer_reset", g.peerReset).Msg("SPOP connection closed")
	}()
}

// idlest returns the connection to close so that a newcomer gets a slot: among those idle
// (no frame being read, no message being answered), one that never sent a NOTIFY (a peer
// that only holds a slot, or an unused HAProxy connection) before any other, then the one
// idle the longest; nil when every connection is busy. HAProxy opens a new connection when
// one of its idle ones is closed, so a flood of connections that do nothing can never keep
// HAProxy's own out. Called with a.mu held.
func (a *Agent) idlest(now time.Time) *guardConn {
	var best *guardConn
	var bestIdle time.Duration
	bestNotified := true
	for g := range a.conns {
		idle, ok := g.idleFor(now)
		if !ok {
			continue
		}
		notified := g.notified.Load()
		if best == nil || (!notified && bestNotified) || (notified == bestNotified && idle > bestIdle) {
			best, bestIdle, bestNotified = g, idle, notified
		}
	}
	return best
}

// logPanic logs a recovered panic on e, rate-limited: its value as text (an error's
// message; a structured field would render most panic values, errors included, as {})
// and the stack of the goroutine that panicked (call it from the deferred recover).
func (a *Agent) logPanic(r any, e *zerolog.Event, msg string) {
	ok, held := a.panicLog.Allow()
	if !ok {
		e.Discard()
		return
	}
	e.Str("panic", fmt.Sprint(r)).Str("stack", string(debug.Stack())).Uint64("suppressed", held).Msg(msg)
}

// connLogger adapts the library's error log (a closed connection and why) to zerolog,
// rate-limited: a flood of bad connections logs one line a second with the count of
// lines held back.
type connLogger struct {
	log   zerolog.Logger
	peer  string
	limit *ratelimit.Limiter
}

func (l connLogger) Errorf(format string, args ...any) {
	ok, held := l.limit.Allow()
	if !ok {
		return
	}
	l.log.Warn().Str("peer", l.peer).Uint64("suppressed", held).Msgf(format, args...)
}
