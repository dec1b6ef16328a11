package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// refusalDialer dials like go-redis's default dialer (TCP keep-alives, TLS when tlsConfig is
// set), except that a refused connection is returned as a connection that fails on first use
// instead of as a dial error.
//
// Why: after pool-size dials in a row fail, go-redis v9 opens a dial breaker. Until a probe
// dial succeeds every call fails at once with the last dial error, and the probe runs once a
// second. A Redis that was restarted would then go unused for up to a second after it listens
// again, and the agent, failing closed, would refuse users for that second. A refused dial is
// the one failure that is certain and cheap to retry (the port is closed right now), so it is
// kept out of the breaker's count: the call fails just the same, with the same error, when the
// client first writes to the connection, and the next call dials again. Timeouts, unreachable
// hosts and TLS failures are returned as they are and still count.
//
// The connection's error is a refusedError, which go-redis does not retry: retrying a closed
// port within milliseconds only holds the caller until its deadline (go-redis backs off
// 100-170 ms between such retries), while the store answers from its cache or refuses at once.
func refusalDialer(tlsConfig *tls.Config) func(context.Context, string, string) (net.Conn, error) {
	dial := goredis.NewDialer(&goredis.Options{TLSConfig: tlsConfig}) // the deadline comes with ctx
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil && errors.Is(err, syscall.ECONNREFUSED) {
			return refusedConn{err: refusedError{err}, addr: refusedAddr{network, addr}}, nil
		}
		return c, err
	}
}

// refusedConn is a connection whose dial was refused: reads and writes return that error, so
// the client drops it as a broken connection.
type refusedConn struct {
	err  error
	addr net.Addr
}

func (c refusedConn) Read([]byte) (int, error)         { return 0, c.err }
func (c refusedConn) Write([]byte) (int, error)        { return 0, c.err }
func (c refusedConn) Close() error                     { return nil }
func (c refusedConn) LocalAddr() net.Addr              { return c.addr }
func (c refusedConn) RemoteAddr() net.Addr             { return c.addr }
func (c refusedConn) SetDeadline(time.Time) error      { return nil }
func (c refusedConn) SetReadDeadline(time.Time) error  { return nil }
func (c refusedConn) SetWriteDeadline(time.Time) error { return nil }

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
