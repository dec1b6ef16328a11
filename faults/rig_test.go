package faults

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/internal/testbed"
)

// node is one HAProxy node with its agent.
type node struct {
	stack *testbed.Stack
	// dir holds the node's haproxy.cfg and its runtime API socket.
	dir string
	// killed keeps the output of agents killed by a fault.
	killed []string
}

// rig is the whole stack: two nodes, their agents, one Redis, three backends.
type rig struct {
	t        *testing.T
	agentBin string
	haproxy  string
	redis    *testbed.Redis
	backends []*testbed.Backend
	nodes    []*node
	mu       sync.Mutex
	// agentDown marks the agents a fault killed: their exit is no crash.
	agentDown  map[int]bool
	crashNoted map[string]bool
	// failures are faults that did not go as planned (a reload that failed), for the table.
	failures []Violation
	opts     rigOptions
}

// rigOptions size the deployment.
type rigOptions struct {
	// Quota is every server's --max-users.
	Quota int
	// Idle is the agents' --idle-timeout.
	Idle time.Duration
	// RedisArgs are redis-server's persistence flags.
	RedisArgs []string
	// FastPath runs every node with haproxy-config --fast-path (default window) and its agent
	// syncing the table every fastPathInterval.
	FastPath bool
}

// fastPathInterval is the agents' --keepalive-interval with the fast path: well within the
// default window (10s), short against the faults' few seconds.
const fastPathInterval = time.Second

// persistent is the Redis of the main suite: it keeps its seats across a restart, as
// production should (appendfsync always: nothing acknowledged is lost).
var persistent = []string{"--appendonly", "yes", "--appendfsync", "always"}

func startRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	bins, err := testbed.HAProxyBins()
	if err != nil {
		t.Fatal(err)
	}
	redisBin, err := testbed.RedisBin()
	if err != nil {
		t.Fatal(err)
	}
	buildCtx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	agentBin, err := testbed.BuildAgent(buildCtx, "..", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, agentBin: agentBin, haproxy: bins[0], agentDown: map[int]bool{}, crashNoted: map[string]bool{}, opts: o}
	// DEBUG enabled for DEBUG SLEEP.
	r.redis, err = testbed.StartRedis(redisBin, redisDir(t), append(append([]string(nil), o.RedisArgs...), "--enable-debug-command", "yes")...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.redis.Stop()
		if t.Failed() {
			t.Logf("--- redis ---\n%s", tail(r.redis.Output(), 40))
		}
	})
	if r.backends, err = testbed.StartBackends(servers...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testbed.StopBackends(r.backends) })
	for i := range 2 {
		// A short directory: the stats socket path must stay under 107 bytes.
		dir, err := os.MkdirTemp("", "ssf")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		so := testbed.StackOptions{
			AgentBin: agentBin, HAProxyBin: r.haproxy, Dir: dir, Mode: "http",
			Backends: r.backends, MaxUsers: o.Quota, Idle: o.Idle, Redis: r.redis.URL(),
			HealthChecks: true,
			Defaults:     []string{"default-server inter 100ms fall 1 rise 1"},
			AgentArgs:    append([]string{"--down-grace", grace.String()}, timeouts...),
			Global:       []string{testbed.ReloadSocketLine(filepath.Join(dir, "h.sock"))},
		}
		if o.FastPath {
			so.KeepAlive, so.FastPathWindow = fastPathInterval, 10*time.Second
		}
		s, err := testbed.StartStack(so)
		if err != nil {
			t.Fatal(err)
		}
		n := &node{stack: s, dir: dir}
		r.nodes = append(r.nodes, n)
		t.Cleanup(func() {
			s.Close()
			if t.Failed() {
				for _, k := range n.killed {
					t.Logf("--- node %d: killed agent ---\n%s", i, tail(k, 40))
				}
				t.Logf("--- node %d ---\n%s", i, tail(s.Logs(), 80))
			}
		})
	}
	return r
}

// redisDir is where Redis keeps its append-only file: in /dev/shm when there is one. With
// appendfsync always Redis fsyncs before every reply, and on a busy shared disk an fsync
// can take longer than the agents' 250 ms store deadline, which would turn steady state into
// an outage; on tmpfs the file still outlives a Redis restart, which is what the suite needs.
func redisDir(t *testing.T) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "ssf-redis")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

// agentArgs are the flags StartStack gave node n's agent, for a restart on the same address.
func (r *rig) agentArgs(n *node) []string {
	args := []string{"serve", "--listen", n.stack.AgentAddr, "--log-format", "json",
		"--servers", strings.Join(servers, ","), "--max-users", fmt.Sprint(r.opts.Quota),
		"--idle-timeout", r.opts.Idle.String(), "--redis", r.redis.URL()}
	if r.opts.FastPath {
		args = append(args, "--haproxy-socket", filepath.Join(n.dir, "admin.sock"), "--keepalive-interval", fastPathInterval.String())
	}
	return append(append(args, "--down-grace", grace.String()), timeouts...)
}

func (r *rig) killAgent(i int) {
	n := r.nodes[i]
	r.mu.Lock()
	r.agentDown[i] = true
	r.mu.Unlock()
	if err := n.stack.Agent.Signal(syscall.SIGKILL); err != nil {
		r.t.Errorf("kill -9 agent %d: %v", i, err)
	}
	if err := n.stack.Agent.Wait(5 * time.Second); err == nil {
		r.t.Errorf("agent %d exited cleanly after kill -9", i)
	}
	n.killed = append(n.killed, n.stack.Agent.Output())
}

// restartAgent starts the node's agent again on the address its HAProxy connects to.
func (r *rig) restartAgent(i int) {
	n := r.nodes[i]
	p, err := testbed.Start("stickyseat", r.agentBin, r.agentArgs(n)...)
	if err != nil {
		r.t.Errorf("restart agent %d: %v", i, err)
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for testbed.LogField(p.Output(), "stickyseat agent started", "listen") != n.stack.AgentAddr {
		if ok, err := p.Exited(); ok || time.Now().After(deadline) {
			r.t.Errorf("restart agent %d on %s: exited %t (%v):\n%s", i, n.stack.AgentAddr, ok, err, p.Output())
			p.Stop()
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	n.stack.Agent = p
	r.mu.Lock()
	r.agentDown[i] = false
	r.mu.Unlock()
}

func (r *rig) stopRedis() { r.redis.Stop() }

// killRedis ends Redis with SIGKILL, as a crash or an OOM kill would: it writes nothing more.
func (r *rig) killRedis() {
	if err := r.redis.Kill(); err != nil {
		r.t.Errorf("kill -9 redis: %v", err)
	}
}

func (r *rig) startRedis() {
	if err := r.redis.Start(); err != nil {
		r.t.Errorf("restart redis: %v", err)
	}
}

// redisCommand sends one command on its own connection and waits for the reply.
func (r *rig) redisCommand(timeout time.Duration, args ...string) {
	c, err := net.DialTimeout("tcp", r.redis.Addr, time.Second)
	if err != nil {
		r.t.Errorf("redis %v: %v", args, err)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		r.t.Errorf("redis %v: %v", args, err)
		return
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "+OK") {
		r.t.Errorf("redis %v: %q, %v; want +OK", args, line, err)
	}
}

// reloadAll reloads both HAProxy nodes at once.
func (r *rig) reloadAll() {
	var wg sync.WaitGroup
	for i, n := range r.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.stack.ReloadHAProxy(r.haproxy); err != nil {
				// Not t.Errorf: a reload that fails (an old process that crashes in its soft
				// stop) is a violation of that fault's row; its full output goes to the log.
				first, _, _ := strings.Cut(err.Error(), "\n")
				r.t.Logf("reload haproxy %d: %v", i, err)
				r.mu.Lock()
				r.failures = append(r.failures, Violation{At: time.Now(), What: fmt.Sprintf("node %d: %s", i, first)})
				r.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// stopBackend stops backend i for d and starts it again.
func (r *rig) stopBackend(i int, d time.Duration) Down {
	b := r.backends[i]
	down := Down{Server: b.Name, Stopped: time.Now()}
	b.Stop()
	time.Sleep(d)
	if err := b.Restart(); err != nil {
		r.t.Errorf("restart backend %s: %v", b.Name, err)
	}
	down.Started = time.Now()
	return down
}

// crashes reports processes that ended without a fault stopping them, and panics logged.
func (r *rig) crashes(at time.Time) []Violation {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.failures
	r.failures = nil
	note := func(key, what string) {
		if !r.crashNoted[key] {
			r.crashNoted[key] = true
			out = append(out, Violation{At: at, What: what})
		}
	}
	for i, n := range r.nodes {
		if ok, err := n.stack.Agent.Exited(); ok && !r.agentDown[i] {
			note(fmt.Sprintf("agent%d-%d", i, n.stack.Agent.Pid()), fmt.Sprintf("crash: agent of node %d exited (%v)", i, err))
		}
		if ok, err := n.stack.HAProxy.Exited(); ok {
			note(fmt.Sprintf("haproxy%d-%d", i, n.stack.HAProxy.Pid()), fmt.Sprintf("crash: haproxy of node %d exited (%v)", i, err))
		}
		for _, out := range append([]string{n.stack.Agent.Output()}, n.killed...) {
			if strings.Contains(out, "panic") {
				note(fmt.Sprintf("panic%d", i), fmt.Sprintf("crash: agent of node %d logged a panic", i))
			}
		}
	}
	return out
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... %d lines before", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
