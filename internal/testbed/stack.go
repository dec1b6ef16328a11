package testbed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stickyseat/stickyseat/haproxy"
)

// StackOptions describe one HAProxy node with its agent and backends.
type StackOptions struct {
	AgentBin   string
	HAProxyBin string
	Dir        string   // for haproxy.cfg and the SPOE file
	Mode       string   // tcp or http
	Servers    []string // backend names
	MaxUsers   int
	Idle       time.Duration
	AgentArgs  []string // extra `stickyseat serve` flags
	// Key is the haproxy-config --key form (header:X, cookie:X, param:X, body or a
	// sample); empty is the mode's default.
	Key string
	// SendSrc adds src=src to the message, for the agent's --key-fallback src.
	SendSrc bool
	// Global holds extra lines for haproxy's global section (e.g. "tune.bufsize 32768").
	Global []string
	// Backends, when set, are shared with other stacks (several HAProxy nodes in front of
	// the same servers) instead of started; Servers is then ignored and Close leaves them.
	Backends []*Backend
	// Redis, when set, is the agent's --redis URL.
	Redis string
	// HealthChecks turns on HAProxy's server checks (and so the up: arguments).
	HealthChecks bool
	// KeepAlive, when set, makes HAProxy track open connections per key and the agent read
	// them over the runtime API at this interval (serve --haproxy-socket).
	KeepAlive time.Duration
	// FastPathWindow, when set, turns on haproxy-config --fast-path with this window: HAProxy
	// routes users it served within it by itself. Set KeepAlive too: the agent keeps the
	// table in step at that interval.
	FastPathWindow time.Duration
	// Defaults holds extra lines for haproxy's defaults section (e.g. "default-server inter 100ms").
	Defaults []string
	// Queue makes users who find every seat taken wait in the pool's line: the agent runs
	// with --when-full queue and HAProxy answers them as queued users.
	Queue bool
	// QueueRetryAfter is how soon HAProxy tells a queued http user to ask again (the waiting
	// page refreshes itself then); zero is haproxy-config's default.
	QueueRetryAfter time.Duration
	// Admin starts the agent's admin API on a loopback port (Stack.AdminAddr).
	Admin bool
}

// Stack is a running node: backends, agent, haproxy.
type Stack struct {
	Mode        string
	Frontend    string
	AgentAddr   string
	AdminAddr   string // the agent's admin API, when StackOptions.Admin
	Backends    []*Backend
	Agent       *Process
	HAProxy     *Process
	ownBackends bool
}

// StartStack starts backends, the agent and haproxy on loopback.
func StartStack(o StackOptions) (*Stack, error) {
	s := &Stack{Mode: o.Mode, Backends: o.Backends}
	var err error
	if s.Backends == nil {
		if s.Backends, err = StartBackends(o.Servers...); err != nil {
			return nil, err
		}
		s.ownBackends = true
	}
	var names []string
	for _, b := range s.Backends {
		names = append(names, b.Name)
	}
	args := append([]string{
		"--servers", strings.Join(names, ","),
		"--max-users", fmt.Sprint(o.MaxUsers),
		"--idle-timeout", o.Idle.String(),
	}, o.AgentArgs...)
	if o.Redis != "" {
		args = append(args, "--redis", o.Redis)
	}
	if o.Queue {
		args = append(args, "--when-full", "queue")
	}
	if o.Admin {
		args = append(args, "--admin-listen", "127.0.0.1:0")
	}
	statsSocket := ""
	if o.KeepAlive > 0 {
		statsSocket = filepath.Join(o.Dir, "admin.sock")
		args = append(args, "--haproxy-socket", statsSocket, "--keepalive-interval", o.KeepAlive.String())
	}
	if s.Agent, s.AgentAddr, err = StartAgent(o.AgentBin, args...); err != nil {
		s.Close()
		return nil, err
	}
	if o.Admin {
		if s.AdminAddr, err = waitLogField(s.Agent, "admin listening", "admin_listen", 10*time.Second); err != nil {
			s.Close()
			return nil, err
		}
	}
	if s.Frontend, err = FreePort(); err != nil {
		s.Close()
		return nil, err
	}
	pool := haproxy.Pool{Name: "default", Queue: o.Queue}
	for _, b := range s.Backends {
		pool.Servers = append(pool.Servers, haproxy.Server{Name: b.Name, Addr: b.Addr})
	}
	spoePath := filepath.Join(o.Dir, "stickyseat.spoe.conf")
	sample, body, err := haproxy.KeySpec(o.Key)
	if o.Key == "" {
		sample, body, err = "", false, nil
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	cfg := haproxy.Config{
		Key:              sample,
		SendBody:         body,
		SendSrc:          o.SendSrc,
		Mode:             o.Mode,
		FrontendBind:     s.Frontend,
		AgentAddr:        s.AgentAddr,
		SPOEPath:         spoePath,
		Pools:            []haproxy.Pool{pool},
		NoHealthChecks:   !o.HealthChecks,
		TrackConnections: o.KeepAlive > 0,
		FastPath:         o.FastPathWindow > 0,
		FastPathWindow:   o.FastPathWindow,
		QueueRetryAfter:  o.QueueRetryAfter,
	}
	main, err := haproxy.RenderStandalone(cfg, haproxy.Globals{LogStdout: true, StatsSocket: statsSocket})
	if err != nil {
		s.Close()
		return nil, err
	}
	if len(o.Defaults) > 0 {
		main = []byte(strings.Replace(string(main), "\ndefaults\n", "\ndefaults\n    "+strings.Join(o.Defaults, "\n    ")+"\n", 1))
	}
	if len(o.Global) > 0 {
		main = []byte(strings.Replace(string(main), "\nglobal\n", "\nglobal\n    "+strings.Join(o.Global, "\n    ")+"\n", 1))
	}
	_, spoe, err := haproxy.Render(cfg)
	if err != nil {
		s.Close()
		return nil, err
	}
	if err := os.WriteFile(spoePath, spoe, 0o644); err != nil {
		s.Close()
		return nil, err
	}
	if s.HAProxy, err = StartHAProxy(o.HAProxyBin, o.Dir, main, s.Frontend); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close stops everything the stack started.
func (s *Stack) Close() {
	s.HAProxy.Stop()
	s.Agent.Stop()
	if s.ownBackends {
		StopBackends(s.Backends)
	}
}

// Logs returns the agent's and haproxy's output, for a failing test.
func (s *Stack) Logs() string {
	var b strings.Builder
	if s.Agent != nil {
		fmt.Fprintf(&b, "--- agent ---\n%s\n", s.Agent.Output())
	}
	if s.HAProxy != nil {
		fmt.Fprintf(&b, "--- haproxy ---\n%s\n", s.HAProxy.Output())
	}
	return b.String()
}

// Reply is what one client request got.
type Reply struct {
	Client string
	Server string // the backend that answered; empty when rejected
	Status int    // HTTP status in http mode (0 when the connection was refused or closed)
	// Place is the place in line an http answer for a queued user shows (0 otherwise).
	Place int
}

// Seated reports whether a backend answered.
func (r Reply) Seated() bool { return r.Server != "" }

// String renders a reply for tables and failures.
func (r Reply) String() string {
	switch {
	case r.Seated():
		return r.Server
	case r.Place != 0:
		return fmt.Sprintf("waiting at place %d (%d)", r.Place, r.Status)
	case r.Status != 0:
		return fmt.Sprintf("rejected (%d)", r.Status)
	}
	return "rejected (connection closed)"
}

// Client is one user: a source address and, in http mode, an x-user header.
type Client struct {
	Name   string
	Source string // e.g. 127.0.0.11
	User   string // x-user header value; empty sends none
	http   *http.Client
}

// NewClient returns a client that opens a new connection from source for every request, so
// that every request is a new stream for HAProxy (and a new decision for the agent).
func NewClient(name, source, user string) *Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 5 * time.Second}
	return &Client{Name: name, Source: source, User: user, http: &http.Client{
		Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
		Timeout:   10 * time.Second,
	}}
}

// Request is one HTTP request a client sends.
type Request struct {
	Method string // default GET
	Path   string // default /
	Header map[string]string
	Body   string
}

// Get sends one request to the frontend. A refused or closed connection is a rejection,
// not an error; an error is anything else (timeouts, unexpected answers).
func (c *Client) Get(ctx context.Context, frontend string) (Reply, error) {
	var h map[string]string
	if c.User != "" {
		h = map[string]string{"X-User": c.User}
	}
	return c.Do(ctx, frontend, Request{Header: h})
}

// Do sends one request to the frontend, like Get.
func (c *Client) Do(ctx context.Context, frontend string, rq Request) (Reply, error) {
	r := Reply{Client: c.Name}
	if rq.Method == "" {
		rq.Method = http.MethodGet
	}
	if rq.Path == "" {
		rq.Path = "/"
	}
	var body io.Reader
	if rq.Body != "" {
		body = strings.NewReader(rq.Body)
	}
	req, err := http.NewRequestWithContext(ctx, rq.Method, "http://"+frontend+rq.Path, body)
	if err != nil {
		return r, err
	}
	for k, v := range rq.Header {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if isRejection(err) {
			return r, nil
		}
		return r, fmt.Errorf("client %s: %w", c.Name, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return r, fmt.Errorf("client %s: read body: %w", c.Name, err)
	}
	if resp.StatusCode == http.StatusOK {
		r.Server = strings.TrimSpace(string(answer))
		return r, nil
	}
	r.Status = resp.StatusCode
	r.Place = pagePlace(string(answer))
	return r, nil
}

// isRejection tells a connection HAProxy closed or reset (tcp-request content reject) from
// other failures. net.ErrClosed is one too: when HAProxy closes a connection before the
// request is written (3.0 rejects a source-address key as soon as the agent answers), Go's
// transport sees the close first and its own write then fails on the connection it closed.
func isRejection(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "connection reset by peer") || strings.Contains(s, "EOF") || strings.Contains(s, "server closed")
}

// Stream opens a long response (the backends' /stream, server-sent events) and returns the
// server that answered and a function that closes the stream. The connection stays open,
// with data flowing, until then.
func (c *Client) Stream(ctx context.Context, frontend string) (string, func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+frontend+"/stream", nil)
	if err != nil {
		cancel()
		return "", nil, err
	}
	if c.User != "" {
		req.Header.Set("X-User", c.User)
	}
	// The client's overall timeout would cut the stream: use the transport directly.
	resp, err := c.http.Transport.RoundTrip(req)
	if err != nil {
		cancel()
		return "", nil, fmt.Errorf("client %s: stream: %w", c.Name, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return "", nil, fmt.Errorf("client %s: stream: HTTP %d", c.Name, resp.StatusCode)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		resp.Body.Close()
		cancel()
		return "", nil, fmt.Errorf("client %s: stream: %w", c.Name, err)
	}
	go io.Copy(io.Discard, resp.Body) // keep reading so data keeps flowing
	return strings.TrimSpace(strings.TrimPrefix(line, "data: ")), func() { cancel(); resp.Body.Close() }, nil
}
