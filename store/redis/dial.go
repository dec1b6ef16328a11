package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// refusalHold is how long, after a server refused a connection, dials to its address are
// answered as refused without trying again: a Redis that is down then sees at most one
// connection attempt per client every refusalHold, and one that is back is used within it.
var refusalHold = 20 * time.Millisecond // a variable for tests

// keepAlive is go-redis's default TCP keep-alive policy (options.go, defaultKeepAliveConfig):
// probe after 30 s idle, declare the peer dead after 3 probes 5 s apart.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 5 * time.Second, Count: 3}

// refusalDialer dials like go-redis's default dialer (TCP keep-alives, TLS when configured,
// within the context's deadline), except that a refused connection is returned as a
// connection that fails on first use instead of as a dial error.
//
// Why: after pool-size dials in a row fail, go-redis v9 opens a dial breaker. Until a probe
// dial succeeds every call fails at once with the last dial error, and the probe runs once a
// second. A Redis that was restarted would then go unused for up to a second after it listens
// again, and the agent, failing closed, would refuse users for that second. A refused dial is
// the one failure that is certain and cheap to notice (the port is closed right now), so it is
// kept out of the breaker's count: the call fails just the same, with the same error, when the
// client first writes to the connection. Refusals are remembered for refusalHold per address,
// so that an outage costs the server one connection attempt per hold, not one per call.
// Timeouts, unreachable hosts and TLS failures are returned as they are and still count.
//
// The connection's error is a refusedError, which go-redis does not retry: retrying a closed
// port within milliseconds only holds the caller until its deadline (go-redis backs off
// 100-170 ms between such retries), while the store answers from its cache or refuses at once.
//
// Sentinel URLs keep go-redis's own dialer: go-redis asks a Sentinel for the master's address
// before every dial, so dials at the rate of calls would be Sentinel queries at that rate.
type refusalDialer struct {
	tls func() *tls.Config // read at each dial, so that a caller may still change the options
	now func() time.Time

	mu      sync.Mutex
	refused map[string]refusal // by address; removed when a dial succeeds
}

// refusal is a remembered refused dial.
type refusal struct {
	until time.Time
	err   error
}

func newRefusalDialer(tlsConfig func() *tls.Config) *refusalDialer {
	return &refusalDialer{tls: tlsConfig, now: time.Now, refused: map[string]refusal{}}
}

// DialContext is the go-redis Options.Dialer.
func (d *refusalDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	r, known := d.refused[addr]
	d.mu.Unlock()
	if known && d.now().Before(r.until) {
		return refusedConn{err: refusedError{r.err}, addr: refusedAddr{network, addr}}, nil
	}
	nd := &net.Dialer{KeepAliveConfig: keepAlive}
	var c net.Conn
	var err error
	if cfg := d.tls(); cfg == nil {
		c, err = nd.DialContext(ctx, network, addr)
	} else {
		// tls.DialWithDialer, which go-redis uses, ignores ctx; tls.Dialer honours it.
		c, err = (&tls.Dialer{NetDialer: nd, Config: cfg}).DialContext(ctx, network, addr)
	}
	switch {
	case err != nil && errors.Is(err, syscall.ECONNREFUSED):
		d.mu.Lock()
		if len(d.refused) >= 256 { // addresses that are gone for good: forget the stale ones
			for a, old := range d.refused {
				if !d.now().Before(old.until) {
					delete(d.refused, a)
				}
			}
		}
		d.refused[addr] = refusal{until: d.now().Add(refusalHold), err: err}
		d.mu.Unlock()
		return refusedConn{err: refusedError{err}, addr: refusedAddr{network, addr}}, nil
	case err == nil && known:
		d.mu.Lock()
		delete(d.refused, addr)
		d.mu.Unlock()
	}
	return c, err
}

// refusedConn is a connection whose dial was refused: reads and writes return that error, so
// the client drops it as a broken connection. A refusedConn that go-redis parks in its idle
// list (a caller gave up while it was being dialed) fails the health check go-redis runs
// before handing out an idle connection, through SyscallConn, and is closed then.
type refusedConn struct {
	err  error
	addr net.Addr
}

func (c refusedConn) Read([]byte) (int, error)              { return 0, c.err }
func (c refusedConn) Write([]byte) (int, error)             { return 0, c.err }
func (c refusedConn) Close() error                          { return nil }
func (c refusedConn) LocalAddr() net.Addr                   { return c.addr }
func (c refusedConn) RemoteAddr() net.Addr                  { return c.addr }
func (c refusedConn) SetDeadline(time.Time) error           { return nil }
func (c refusedConn) SetReadDeadline(time.Time) error       { return nil }
func (c refusedConn) SetWriteDeadline(time.Time) error      { return nil }
func (c refusedConn) SyscallConn() (syscall.RawConn, error) { return nil, c.err }

// refusedError is a refused dial's error as the connection reports it. It says what the dial
// said and matches syscall.ECONNREFUSED with errors.Is, but deliberately wraps nothing:
// go-redis retries errors that are, or wrap, a *net.OpError or anything with a Timeout method
// (syscall.Errno has one).
type refusedError struct{ dial error }

func (e refusedError) Error() string        { return e.dial.Error() }
func (e refusedError) Is(target error) bool { return target == syscall.ECONNREFUSED }

// refusedAddr is the address that refused the connection.
type refusedAddr struct{ network, addr string }

func (a refusedAddr) Network() string { return a.network }
func (a refusedAddr) String() string  { return a.addr }
