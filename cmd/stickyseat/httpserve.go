package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/admin"
	"github.com/stickyseat/stickyseat/metrics"
)

// listenHTTP listens on addr and returns the function that serves h there until ctx ends
// and the server has shut down (nil when addr is empty: nothing to serve). Listening first
// makes a bad address an error at start; the caller runs the function on a goroutine it waits for.
func listenHTTP(ctx context.Context, log zerolog.Logger, addr, what string, h http.Handler) (func(), error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--%s-listen: %w", what, err)
	}
	log.Info().Str(what+"_listen", ln.Addr().String()).Msgf("%s listening", what)
	ln = newLimitListener(ln, httpMaxConns)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	return func() {
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		select {
		case err := <-served:
			log.Error().Err(err).Str("listen", addr).Msgf("%s server stopped", what)
			return
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Debug().Err(err).Msgf("%s server: requests still running at exit", what)
		}
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Str("listen", addr).Msgf("%s server stopped", what)
		}
	}, nil
}

// httpMaxConns bounds the connections each HTTP listener (metrics, admin) serves at once:
// an idle flood there holds at most this many of the process's file descriptors, which the
// SPOP listener needs; connections beyond wait in the kernel's backlog until one closes
// (idle ones close after the server's read timeout).
const httpMaxConns = 64

// limitListener accepts a connection only while fewer than its capacity are open.
type limitListener struct {
	net.Listener
	slots chan struct{}
	done  chan struct{}
	once  sync.Once
}

func newLimitListener(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, n), done: make(chan struct{})}
}

// Accept waits for a free slot, then accepts.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

// Close stops accepting, waking an Accept waiting for a slot.
func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its slot back when closed, once.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// metricsMux serves /metrics and, with profiles, Go's /debug/pprof/ handlers. serve allows
// profiles on a loopback listener only; they answer only requests whose Host is the
// listener's address or a loopback name, so a web page that rebinds its DNS name to the
// loopback address cannot read them (the command line among them).
func metricsMux(m *metrics.Metrics, profiles bool, log zerolog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	if profiles {
		pp := http.NewServeMux()
		pp.HandleFunc("/debug/pprof/", pprof.Index)
		pp.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		pp.HandleFunc("/debug/pprof/profile", pprof.Profile)
		pp.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		pp.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.Handle("/debug/pprof/", admin.HostGuard(nil, log.With().Str("component", "pprof").Logger(), pp))
	}
	return mux
}

// isLoopback reports whether a listen address only binds loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
