package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/internal/testbed"
)

// The fast path's timing in these tests: HAProxy routes a user it served within window by
// itself; the agent syncs its table every interval (interval <= window, as the README asks).
const (
	fpIdle     = time.Second
	fpWindow   = 500 * time.Millisecond
	fpInterval = 100 * time.Millisecond
	// fpPass is what one sync pass may take on a loaded test machine (the bounds add it).
	fpPass = 400 * time.Millisecond
)

// fastPathStack is one node with the fast path on: HAProxy keeps the table, the agent syncs
// it every fpInterval over the runtime API.
type fastPathStack struct {
	*testbed.Stack
	opts    testbed.StackOptions
	metrics string // the agent's metrics address
}

func startFastPathStack(t *testing.T, o testbed.StackOptions) *fastPathStack {
	t.Helper()
	o.Mode, o.Servers, o.Idle = "http", []string{"s1", "s2"}, fpIdle
	o.KeepAlive, o.FastPathWindow = fpInterval, fpWindow
	o.AgentArgs = append(o.AgentArgs, "--metrics-listen", "127.0.0.1:0")
	s := startStack(t, o)
	return &fastPathStack{Stack: s, opts: o, metrics: waitLogField(t, s.Agent, "metrics listening", "metrics_listen")}
}

// asked returns how many messages the agent has answered.
func (s *fastPathStack) asked(t *testing.T) float64 {
	t.Helper()
	return scrape(t, s.metrics)["stickyseat_spop_frames_total"]
}

// get sends one request as client and fails the test on a transport error.
func get(ctx context.Context, t *testing.T, s *fastPathStack, c *testbed.Client) testbed.Reply {
	t.Helper()
	r, err := c.Get(ctx, s.Frontend)
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	return r
}

// TestFastPathKeepsSeat: a user active only through HAProxy's own routing keeps the seat
// for three idle timeouts (the agent refreshes it from HAProxy's table), so the quota holds:
// a newcomer is refused their server while they are active. Once they stop, the seat frees
// within idle + window + interval.
func TestFastPathKeepsSeat(t *testing.T) { forEachHAProxy(t, testFastPathKeepsSeat) }

func testFastPathKeepsSeat(t *testing.T, bin string) {
	s := startFastPathStack(t, testbed.StackOptions{HAProxyBin: bin, MaxUsers: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	alice := testbed.NewClient("alice", "127.0.0.11", "alice")
	quiet := testbed.NewClient("quiet", "127.0.0.12", "quiet")
	newcomer := testbed.NewClient("newcomer", "127.0.0.13", "newcomer")

	if r := get(ctx, t, s, alice); r.Server != "s1" {
		t.Fatalf("alice: %s; want s1", r)
	}
	if r := get(ctx, t, s, quiet); r.Server != "s2" {
		t.Fatalf("quiet: %s; want s2", r)
	}
	hits := func() float64 { return scrape(t, s.metrics)[`stickyseat_decisions_total{pool="default",status="hit"}`] }
	hitsBefore := hits()
	start := time.Now()
	for time.Since(start) < 3*fpIdle {
		if r := get(ctx, t, s, alice); r.Server != "s1" {
			t.Fatalf("alice %s in: %s; want s1", time.Since(start).Round(time.Millisecond), r)
		}
		if r := get(ctx, t, s, newcomer); r.Server == "s1" {
			t.Fatalf("newcomer got s1 %s in, while alice is active on it", time.Since(start).Round(time.Millisecond))
		}
		time.Sleep(fpInterval)
	}
	// Alice never asked the agent in those three idle timeouts (she would have been a hit;
	// the newcomer was full, then new, then on the fast path too).
	if got := hits() - hitsBefore; got != 0 {
		t.Errorf("agent answered %.0f hits while alice used the fast path; want none", got)
	}
	if r := get(ctx, t, s, newcomer); r.Server != "s2" {
		t.Fatalf("newcomer once the quiet user's seat expired: %s; want s2", r)
	}

	// Alice stops: her seat frees no later than idle + window + interval (+ one pass).
	last := time.Now()
	late := testbed.NewClient("late", "127.0.0.14", "late")
	for {
		get(ctx, t, s, newcomer) // keeps s2 taken
		r := get(ctx, t, s, late)
		if r.Server == "s1" {
			if waited := time.Since(last); waited < fpIdle {
				t.Errorf("s1 freed %s after alice's last request; want at least the idle timeout %s", waited, fpIdle)
			}
			break
		}
		if bound := fpIdle + fpWindow + fpInterval + fpPass; time.Since(last) > bound {
			t.Fatalf("s1 still held %s after alice's last request; want it free within %s", time.Since(last), bound)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFastPathEvicted: a user evicted (a change HAProxy's table knows nothing of) is routed
// by the agent's answer from the next sync pass on: the new holder of the seat shares the
// server with them for at most one interval (+ the pass).
func TestFastPathEvicted(t *testing.T) { forEachHAProxy(t, testFastPathEvicted) }

func testFastPathEvicted(t *testing.T, bin string) {
	s := startFastPathStack(t, testbed.StackOptions{HAProxyBin: bin, MaxUsers: 1, Admin: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	alice := testbed.NewClient("alice", "127.0.0.11", "alice")
	bob := testbed.NewClient("bob", "127.0.0.12", "bob")
	carol := testbed.NewClient("carol", "127.0.0.13", "carol")
	if r := get(ctx, t, s, alice); r.Server != "s1" {
		t.Fatalf("alice: %s; want s1", r)
	}
	if r := get(ctx, t, s, bob); r.Server != "s2" {
		t.Fatalf("bob: %s; want s2", r)
	}
	if r := get(ctx, t, s, alice); r.Server != "s1" {
		t.Fatalf("alice again: %s; want s1", r)
	}
	if err := s.Evict(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	evicted := time.Now()
	if r := get(ctx, t, s, carol); r.Server != "s1" {
		t.Fatalf("carol after alice's eviction: %s; want s1 (alice's seat is free)", r)
	}
	for {
		get(ctx, t, s, bob)
		get(ctx, t, s, carol) // both stay active: every seat is taken
		r := get(ctx, t, s, alice)
		if !r.Seated() {
			if r.Status != 503 {
				t.Errorf("alice after the sync: %s; want 503 (every seat is taken)", r)
			}
			t.Logf("alice routed by the agent's answer %s after her eviction", time.Since(evicted).Round(time.Millisecond))
			break
		}
		if r.Server != "s1" {
			t.Fatalf("alice after her eviction: %s; want s1 (her entry) or refused", r)
		}
		if bound := fpInterval + fpPass; time.Since(evicted) > bound {
			t.Fatalf("alice still routed to s1 %s after her eviction; want the agent's answer within %s", time.Since(evicted), bound)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFastPathServerDown: the users of a server HAProxy sees down are refused during the
// grace and moved after it, although HAProxy routes them by itself and they never tell the
// agent (the sync pass reports HAProxy's server states).
func TestFastPathServerDown(t *testing.T) { forEachHAProxy(t, testFastPathServerDown) }

func testFastPathServerDown(t *testing.T, bin string) {
	const grace = time.Second
	s := startFastPathStack(t, testbed.StackOptions{HAProxyBin: bin, MaxUsers: 2, HealthChecks: true,
		Defaults:  []string{"default-server inter 100ms fall 1 rise 1"},
		AgentArgs: []string{"--down-grace", grace.String()}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	alice := testbed.NewClient("alice", "127.0.0.11", "alice")
	if r := get(ctx, t, s, alice); r.Server != "s1" {
		t.Fatalf("alice: %s; want s1", r)
	}
	s.Backends[0].Stop()
	stopped := time.Now()
	for {
		r := get(ctx, t, s, alice)
		if r.Server == "s2" {
			if waited := time.Since(stopped); waited < grace {
				t.Errorf("alice moved %s after s1 stopped; want the grace %s first", waited, grace)
			}
			break
		}
		if r.Seated() {
			t.Fatalf("alice while s1 is down: %s; want refused, then s2", r)
		}
		if time.Since(stopped) > 10*time.Second {
			t.Fatalf("alice not moved 10s after s1 stopped: %s", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := get(ctx, t, s, alice); r.Server != "s2" {
		t.Errorf("alice after the move: %s; want s2", r)
	}
}

// TestFastPathAgentKilled: with the agent killed, users HAProxy served within the window keep
// their server, newcomers are refused; once the agent is back everything resumes.
func TestFastPathAgentKilled(t *testing.T) { forEachHAProxy(t, testFastPathAgentKilled) }

func testFastPathAgentKilled(t *testing.T, bin string) {
	s := startFastPathStack(t, testbed.StackOptions{HAProxyBin: bin, MaxUsers: 2})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	alice := testbed.NewClient("alice", "127.0.0.11", "alice")
	newcomer := testbed.NewClient("newcomer", "127.0.0.12", "newcomer")
	if r := get(ctx, t, s, alice); r.Server != "s1" {
		t.Fatalf("alice: %s; want s1", r)
	}
	if err := s.Agent.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := s.Agent.Wait(5 * time.Second); err == nil {
		t.Fatal("agent exited cleanly after kill -9")
	}
	killed := time.Now()
	for time.Since(killed) < 2*fpIdle {
		if r := get(ctx, t, s, alice); r.Server != "s1" {
			t.Fatalf("alice %s after the agent was killed: %s; want s1", time.Since(killed).Round(time.Millisecond), r)
		}
		time.Sleep(fpWindow / 4)
	}
	if r := get(ctx, t, s, newcomer); r.Seated() {
		t.Fatalf("newcomer with the agent down: %s; want refused", r)
	}

	// The agent comes back (its memory store empty): the first pass finds no seat for alice
	// and makes HAProxy forget her, she is seated again by the agent, newcomers too.
	restartAgent(t, s)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := get(ctx, t, s, newcomer)
		if r.Seated() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("newcomer still refused 10s after the agent came back: %s", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	asked := s.asked(t)
	if r := get(ctx, t, s, alice); !r.Seated() {
		t.Fatalf("alice after the agent came back: %s; want a seat", r)
	}
	deadline = time.Now().Add(fpInterval + fpPass)
	for s.asked(t) == asked && time.Now().Before(deadline) {
		if r := get(ctx, t, s, alice); !r.Seated() {
			t.Fatalf("alice after the agent came back: %s; want a seat", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s.asked(t) == asked {
		t.Errorf("alice never asked the restarted agent within a pass: her seat is gone from its store, HAProxy must forget her")
	}
}

// restartAgent starts the node's agent again on the address HAProxy connects to, with the
// flags StartStack gave it.
func restartAgent(t *testing.T, s *fastPathStack) {
	t.Helper()
	o := s.opts
	args := append([]string{"serve", "--listen", s.AgentAddr, "--log-format", "json",
		"--servers", strings.Join(o.Servers, ","), "--max-users", fmt.Sprint(o.MaxUsers), "--idle-timeout", o.Idle.String(),
		"--haproxy-socket", filepath.Join(o.Dir, "admin.sock"), "--keepalive-interval", o.KeepAlive.String()}, o.AgentArgs...)
	p, err := testbed.Start("stickyseat", agentBin, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	deadline := time.Now().Add(10 * time.Second)
	for testbed.LogField(p.Output(), "stickyseat agent started", "listen") != s.AgentAddr {
		if ok, err := p.Exited(); ok || time.Now().After(deadline) {
			t.Fatalf("restart agent on %s: exited %t (%v):\n%s", s.AgentAddr, ok, err, p.Output())
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.Agent = p
	s.metrics = waitLogField(t, p, "metrics listening", "metrics_listen")
}

// TestFastPathReload: HAProxy reloaded with the fast path on keeps routing every user to
// their seat's server (the new process asks the agent once per user, then routes by itself).
func TestFastPathReload(t *testing.T) { forEachHAProxy(t, testFastPathReload) }

func testFastPathReload(t *testing.T, bin string) {
	s := startFastPathStack(t, testbed.StackOptions{HAProxyBin: bin, MaxUsers: 1,
		Global: []string{testbed.ReloadSocketLine(filepath.Join(t.TempDir(), "reload.sock"))}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	alice := testbed.NewClient("alice", "127.0.0.11", "alice")
	bob := testbed.NewClient("bob", "127.0.0.12", "bob")
	carol := testbed.NewClient("carol", "127.0.0.13", "carol")
	check := func(when string) {
		t.Helper()
		for _, w := range []struct {
			c      *testbed.Client
			server string
		}{{alice, "s1"}, {bob, "s2"}} {
			if r := get(ctx, t, s, w.c); r.Server != w.server {
				t.Fatalf("%s %s: %s; want %s", w.c.Name, when, r, w.server)
			}
		}
		if r := get(ctx, t, s, carol); r.Seated() {
			t.Fatalf("carol %s: %s; want refused (every seat taken)", when, r)
		}
	}
	check("before the reload")
	check("on the fast path")
	if err := s.ReloadHAProxy(bin); err != nil {
		t.Fatal(err)
	}
	asked := s.asked(t)
	check("after the reload")
	check("after the reload, on the fast path")
	// After the reload: alice and bob asked once each (the new process's table was empty),
	// carol twice.
	if got := s.asked(t) - asked; got != 4 {
		t.Errorf("agent answered %.0f messages for two rounds after the reload; want 4 (alice and bob once, carol twice)", got)
	}
}
