package e2e

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/internal/testbed"
)

// TestSilentFloodDoesNotLockHAProxyOut: a local peer opens more SPOP connections than
// --max-connections and never sends a HELLO. While it holds every slot HAProxy's own
// connections are refused (and so is every stream); once --hello-timeout passes the agent
// closes the silent ones and HAProxy's streams are answered again. The refusals are
// counted and logged, a line a second at most.
func TestSilentFloodDoesNotLockHAProxyOut(t *testing.T) { forEachHAProxy(t, testSilentFlood) }

func testSilentFlood(t *testing.T, bin string) {
	const (
		maxConns = 6
		extra    = 4 // flood connections beyond the limit, refused at once
		hello    = 2 * time.Second
		slack    = 3 * time.Second // for HAProxy's next connection and a loaded machine
	)
	s := startStack(t, testbed.StackOptions{HAProxyBin: bin, Mode: "tcp", Servers: []string{"s1"},
		MaxUsers: 10, Idle: time.Hour,
		AgentArgs: []string{"--max-connections", "6", "--hello-timeout", hello.String(), "--metrics-listen", "127.0.0.1:0"}})
	metricsAddr := waitLogField(t, s.Agent, "metrics listening", "metrics_listen")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// HAProxy has not connected yet (it connects on its first stream): the flood takes
	// every slot. Loopback only, bounded.
	floodStart := time.Now()
	var flood []net.Conn
	for range maxConns + extra {
		conn, err := net.DialTimeout("tcp", s.AgentAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		flood = append(flood, conn)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := scrape(t, metricsAddr)
		if m["stickyseat_spop_connections"] == maxConns && m["stickyseat_spop_refused_connections_total"] >= extra {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the flood does not hold every slot: %v open, %v refused", m["stickyseat_spop_connections"], m["stickyseat_spop_refused_connections_total"])
		}
		time.Sleep(10 * time.Millisecond)
	}

	// While the flood holds every slot, HAProxy cannot reach the agent: the stream is refused.
	c := testbed.NewClient("client-1", "127.0.0.11", "")
	r, err := c.Get(ctx, s.Frontend)
	if err != nil {
		t.Fatal(err)
	}
	asked := time.Since(floodStart)
	if asked < hello && r.Seated() {
		t.Fatalf("seated %s after the flood began, with every slot held; want refused (the flood did not lock HAProxy out, so this test proves nothing)", asked)
	}
	// Then HAProxy gets in again within the HELLO timeout.
	for !r.Seated() {
		if time.Since(floodStart) > hello+slack {
			t.Fatalf("HAProxy's streams still refused %s after a silent flood began; --hello-timeout is %s (last reply %s)", time.Since(floodStart), hello, r)
		}
		time.Sleep(50 * time.Millisecond)
		if r, err = c.Get(ctx, s.Frontend); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seated %s after the flood began (--hello-timeout %s)", time.Since(floodStart).Round(time.Millisecond), hello)
	if took := time.Since(floodStart); took < hello-500*time.Millisecond {
		t.Errorf("seated %s after the flood began, before the HELLO timeout %s freed a slot", took, hello)
	}

	m := scrape(t, metricsAddr)
	if got := m["stickyseat_spop_hello_timeouts_total"]; got != maxConns {
		t.Errorf("stickyseat_spop_hello_timeouts_total = %v; want %d (the flood's held connections)", got, maxConns)
	}
	refused := m["stickyseat_spop_refused_connections_total"]
	if refused < extra+1 {
		t.Errorf("stickyseat_spop_refused_connections_total = %v; want at least %d (the flood's extra connections and HAProxy's)", refused, extra+1)
	}
	// Refusals are logged, at most a line a second.
	lines := strings.Count(s.Agent.Output(), "SPOP connection refused")
	if elapsed := time.Since(floodStart); lines < 1 || float64(lines) > elapsed.Seconds()+1 {
		t.Errorf("%d refusal log lines for %v refusals in %s; want between 1 and one a second", lines, refused, elapsed.Round(time.Millisecond))
	}
	// The flood's connections were closed by the agent.
	for i, conn := range flood {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Errorf("flood connection %d got bytes from the agent", i)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("flood connection %d still open", i)
		}
	}
}

// waitLogField waits for the agent to log the line with message and returns its field.
func waitLogField(t *testing.T, p *testbed.Process, message, field string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if v := testbed.LogField(p.Output(), message, field); v != "" {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent did not log %q:\n%s", message, p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHAProxyClosingLogsNoWarning: however HAProxy ends its SPOP connections (3.1+ closes
// idle ones with a reset, when it purges its idle server connections), a connection that
// was answered in full is a normal close: the agent logs no warning for it.
func TestHAProxyClosingLogsNoWarning(t *testing.T) { forEachHAProxy(t, testHAProxyClosing) }

func testHAProxyClosing(t *testing.T, bin string) {
	s := startStack(t, testbed.StackOptions{HAProxyBin: bin, Mode: "tcp", Servers: []string{"s1"},
		MaxUsers: 10, Idle: time.Hour, AgentArgs: []string{"--metrics-listen", "127.0.0.1:0"},
		// 3.1+ keeps SPOP connections as idle server connections: purge them soon.
		Defaults: []string{"default-server pool-purge-delay 100ms"}})
	metricsAddr := waitLogField(t, s.Agent, "metrics listening", "metrics_listen")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 5 {
		r, err := testbed.NewClient("client", "127.0.0.11", "").Get(ctx, s.Frontend)
		if err != nil || !r.Seated() {
			t.Fatalf("request %d: %s, %v; want a seat", i, r, err)
		}
	}
	if open := scrape(t, metricsAddr)["stickyseat_spop_connections"]; open == 0 {
		t.Fatal("HAProxy holds no SPOP connection after answered streams")
	}
	// 3.1+ closes its idle connections itself; before 3.1 they stay for the SPOE "timeout
	// idle" (minutes), so stop HAProxy if they are still open after a while.
	deadline := time.Now().Add(3 * time.Second)
	stopped := false
	for scrape(t, metricsAddr)["stickyseat_spop_connections"] != 0 {
		if time.Now().After(deadline) {
			if stopped {
				t.Fatal("the agent still holds SPOP connections 3s after HAProxy stopped")
			}
			s.HAProxy.Stop()
			stopped = true
			deadline = time.Now().Add(3 * time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("connections closed by HAProxy while running: %v", !stopped)
	for _, line := range strings.Split(s.Agent.Output(), "\n") {
		if strings.Contains(line, `"level":"warn"`) || strings.Contains(line, `"level":"error"`) {
			t.Errorf("agent logged, as HAProxy closed its connections: %s", line)
		}
	}
}
