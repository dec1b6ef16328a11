package haproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/negasus/haproxy-spoe-go/action"
	"github.com/negasus/haproxy-spoe-go/agent"
	"github.com/negasus/haproxy-spoe-go/logger"
	"github.com/negasus/haproxy-spoe-go/request"
)

// This file holds the end-to-end harness: a fake SPOE agent, fake servers and a real haproxy
// process, all on random loopback ports.

// seat is what the fake agent answers; empty fields are not set.
type seat struct{ server, status, position, wait string }

// fakeAgent stands in for `stickyseat serve`: it answers each "stickyseat" message with what
// its answer function returns (strings only, as the real agent) and records the arguments.
type fakeAgent struct {
	mu     sync.Mutex
	answer func(args map[string]any) seat
	calls  []map[string]any
}

func startFakeAgent(t *testing.T, answer func(args map[string]any) seat) (*fakeAgent, string) {
	t.Helper()
	return startFakeAgentOn(t, "127.0.0.1:0", answer)
}

// startFakeAgentOn starts a fake agent listening on addr.
func startFakeAgentOn(t *testing.T, addr string, answer func(args map[string]any) seat) (*fakeAgent, string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fa := &fakeAgent{answer: answer}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Serve returns once the listener is closed; connections already handed to
		// HAProxy end when it stops.
		if err := agent.New(fa.handle, logger.NewNop()).Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("fake agent: %v", err)
		}
	}()
	t.Cleanup(func() {
		if err := ln.Close(); err != nil {
			t.Errorf("close fake agent: %v", err)
		}
		<-done
	})
	return fa, ln.Addr().String()
}

func (fa *fakeAgent) handle(req *request.Request) {
	msg, err := req.Messages.GetByName(Engine)
	if err != nil {
		return
	}
	args := map[string]any{}
	for _, item := range msg.KV.Data() {
		// The library reuses its buffers once the handler returns: copy what we keep.
		switch v := item.Value.(type) {
		case []byte:
			args[item.Name] = bytes.Clone(v)
		case net.IP:
			args[item.Name] = net.IP(bytes.Clone(v))
		default:
			args[item.Name] = v
		}
	}
	fa.mu.Lock()
	fa.calls = append(fa.calls, args)
	answer := fa.answer
	fa.mu.Unlock()

	s := answer(args)
	if s.server != "" {
		req.Actions.SetVar(action.ScopeTransaction, "server", s.server)
	}
	if s.status != "" {
		req.Actions.SetVar(action.ScopeTransaction, "status", s.status)
	}
	if s.position != "" {
		req.Actions.SetVar(action.ScopeTransaction, "position", s.position)
	}
	if s.wait != "" {
		req.Actions.SetVar(action.ScopeTransaction, "wait", s.wait)
	}
}

func (fa *fakeAgent) setAnswer(answer func(args map[string]any) seat) {
	fa.mu.Lock()
	defer fa.mu.Unlock()
	fa.answer = answer
}

// takeCalls returns the arguments of every message received since the last call.
func (fa *fakeAgent) takeCalls() []map[string]any {
	fa.mu.Lock()
	defer fa.mu.Unlock()
	calls := fa.calls
	fa.calls = nil
	return calls
}

func always(s seat) func(map[string]any) seat {
	return func(map[string]any) seat { return s }
}

// fakeServer is one backend server: an HTTP server answering its own name. In tcp mode
// HAProxy relays the same HTTP bytes without parsing them.
type fakeServer struct {
	name string
	addr string
	hits atomic.Int64
}

func startFakeServer(t *testing.T, name string) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeServer{name: name, addr: ln.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.hits.Add(1)
		if _, err := io.WriteString(w, name); err != nil {
			t.Errorf("server %s: %v", name, err)
		}
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("server %s: %v", name, err)
		}
	}()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close server %s: %v", name, err)
		}
		<-done
	})
	return fs
}

// lockedBuffer collects a process's output from two pipes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startHAProxy runs `bin -f haproxy.cfg -db` in dir until the test ends and waits until its
// stats socket (at sock) accepts connections. Readiness is not probed on the frontend: a probe
// connection there would itself ask the agent for a seat. Its output is printed only when the
// test fails.
func startHAProxy(t *testing.T, bin, dir, sock string) {
	t.Helper()
	var out lockedBuffer
	cmd := exec.Command(bin, "-f", "haproxy.cfg", "-db")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("stop haproxy: %v", err)
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			if err := cmd.Process.Kill(); err != nil {
				t.Errorf("kill haproxy: %v", err)
			}
			<-exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", bin, out.String())
		}
	})

	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("%s exited before it was ready: %v\n%s", bin, waitErr, out.String())
		default:
		}
		conn, err := net.DialTimeout("unix", sock, 100*time.Millisecond)
		if err == nil {
			if err := conn.Close(); err != nil {
				t.Fatal(err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 10s (stats socket %s: %v)", bin, sock, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shortTempDir returns a temporary directory whose path is short enough for a unix socket
// (108 bytes at most on Linux; t.TempDir embeds the test name).
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ss")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	return dir
}

// freeAddr returns a loopback address nothing listens on (for HAProxy to bind, or to stand
// for an agent that is not running).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// rig is one running setup: haproxy with a rendered config, its servers and its agent.
type rig struct {
	front string
	agent *fakeAgent // nil when the agent is down
	// agentAddr is where HAProxy looks for the agent.
	agentAddr string
	servers   map[string]*fakeServer
	// sock is HAProxy's admin runtime API socket.
	sock string
}

// startRig fills in c's addresses, starts a fake server per server name, the fake agent
// (unless agentUp is false: then nothing listens at the agent address), renders c (passing
// the standalone haproxy.cfg through edit when not nil) and starts haproxy.
func startRig(t *testing.T, bin string, c Config, agentUp bool, edit func(cfg string) string) *rig {
	t.Helper()
	r := &rig{front: freeAddr(t), servers: map[string]*fakeServer{}}
	c.FrontendBind = r.front
	c.SPOEPath = "stickyseat.spoe.conf" // relative to haproxy's working directory
	c.Pools = append([]Pool(nil), c.Pools...)
	for i := range c.Pools {
		c.Pools[i].Servers = append([]Server(nil), c.Pools[i].Servers...)
		for j, s := range c.Pools[i].Servers {
			fs := startFakeServer(t, s.Name)
			r.servers[s.Name] = fs
			c.Pools[i].Servers[j].Addr = fs.addr
		}
	}
	if agentUp {
		r.agent, c.AgentAddr = startFakeAgent(t, always(seat{}))
	} else {
		c.AgentAddr = freeAddr(t)
	}
	r.agentAddr = c.AgentAddr

	dir := t.TempDir()
	sock := filepath.Join(shortTempDir(t), "admin.sock")
	writeRender(t, dir, c, Globals{LogStdout: true, StatsSocket: sock})
	if edit != nil {
		path := filepath.Join(dir, "haproxy.cfg")
		cfg, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(edit(string(cfg))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	startHAProxy(t, bin, dir, sock)
	r.sock = sock
	return r
}

// hits returns how many requests each server got since the last call, as "name=n" pairs.
func (r *rig) hits() string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(r.servers)) {
		if n := r.servers[name].hits.Swap(0); n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", name, n))
		}
	}
	return strings.Join(parts, " ")
}

// response is what a client saw.
type response struct {
	status     int
	body       string
	retryAfter string
}

// do sends one request on a fresh connection (no keep-alive: every request is a new stream).
func (r *rig) do(method, path, user, body string) (response, error) {
	req, err := http.NewRequest(method, "http://"+r.front+path, strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	if user != "" {
		req.Header.Set("X-User", user)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{resp.StatusCode, string(b), resp.Header.Get("Retry-After")}, nil
}

// refused sends raw bytes and reports nil when HAProxy closes (or resets) the connection
// without sending a single byte back, the tcp-mode refusal.
func (r *rig) refused(raw string) error {
	conn, err := net.DialTimeout("tcp", r.front, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	if _, err := io.WriteString(conn, raw); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	got, err := io.ReadAll(conn)
	if len(got) > 0 {
		return fmt.Errorf("got a response: %q", got)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("connection still open after 10s: %w", err)
	}
	return nil // EOF or reset
}
