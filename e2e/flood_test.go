package e2e

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/agent/spop/spoptest"
	"github.com/stickyseat/stickyseat/internal/testbed"
)

// TestSilentFloodDoesNotLockHAProxyOut: a local peer opens more SPOP connections than
// --max-connections and holds them silent, without a HELLO or after one. HAProxy's own
// connection still gets in at once, long before --hello-timeout or the idle timeout
// would free a slot: at the limit the agent closes the connection idle the longest that
// never sent a NOTIFY. The closings are counted and logged, a line a second at most.
func TestSilentFloodDoesNotLockHAProxyOut(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		t.Run("no HELLO", func(t *testing.T) { testSilentFlood(t, bin, false) })
		t.Run("HELLO then silent", func(t *testing.T) { testSilentFlood(t, bin, true) })
	})
}

func testSilentFlood(t *testing.T, bin string, hello bool) {
	const (
		maxConns = 6
		extra    = 4 // flood connections beyond the limit
		// Far longer than the test: only closing idle connections can let HAProxy in.
		helloTimeout = time.Minute
		bound        = 3 * time.Second // HAProxy's first stream, on a loaded machine
	)
	s := startStack(t, testbed.StackOptions{HAProxyBin: bin, Mode: "tcp", Servers: []string{"s1"},
		MaxUsers: 10, Idle: time.Hour,
		AgentArgs: []string{"--max-connections", strconv.Itoa(maxConns), "--hello-timeout", helloTimeout.String(), "--metrics-listen", "127.0.0.1:0"}})
	metricsAddr := waitLogField(t, s.Agent, "metrics listening", "metrics_listen")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// HAProxy has not connected yet (it connects on its first stream): the flood takes
	// every slot. Loopback only, bounded.
	floodStart := time.Now()
	for i := range maxConns + extra {
		conn, err := net.DialTimeout("tcp", s.AgentAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if hello {
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			// Beyond the limit an agent that refuses newcomers closes them before the HELLO.
			if _, err := spoptest.NewClient(conn).Hello(false); err != nil && i < maxConns {
				t.Fatalf("flood connection %d: HELLO: %v", i, err)
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := scrape(t, metricsAddr)
		gone := m["stickyseat_spop_evicted_connections_total"] + m["stickyseat_spop_refused_connections_total"]
		if m["stickyseat_spop_connections"] == maxConns && gone >= extra {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the flood does not hold every slot: %v open, %v closed or refused", m["stickyseat_spop_connections"], gone)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The flood holds every slot; HAProxy's connection gets in and its stream is answered.
	asked := time.Now()
	c := testbed.NewClient("client-1", "127.0.0.11", "")
	r, err := c.Get(ctx, s.Frontend)
	for err == nil && !r.Seated() && time.Since(asked) < bound {
		time.Sleep(50 * time.Millisecond)
		r, err = c.Get(ctx, s.Frontend)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !r.Seated() {
		t.Fatalf("HAProxy's streams still refused %s after asking, with a silent flood holding every slot (last reply %s); --hello-timeout is %s",
			time.Since(asked).Round(time.Millisecond), r, helloTimeout)
	}
	t.Logf("seated %s after asking, %s after the flood began", time.Since(asked).Round(time.Millisecond), time.Since(floodStart).Round(time.Millisecond))
	// And it stays in: more users, each a new stream, while the flood is still held.
	for i := 2; i <= 5; i++ {
		u := testbed.NewClient(fmt.Sprintf("client-%d", i), fmt.Sprintf("127.0.0.%d", 10+i), "")
		if r, err := u.Get(ctx, s.Frontend); err != nil || !r.Seated() {
			t.Fatalf("user %d with the flood held: %s, %v; want a seat", i, r, err)
		}
	}

	m := scrape(t, metricsAddr)
	if got := m["stickyseat_spop_hello_timeouts_total"]; got != 0 {
		t.Errorf("stickyseat_spop_hello_timeouts_total = %v; want 0 (HAProxy got in before any HELLO timeout)", got)
	}
	if got := m["stickyseat_spop_refused_connections_total"]; got != 0 {
		t.Errorf("stickyseat_spop_refused_connections_total = %v; want 0 (every flood connection is idle)", got)
	}
	evicted := m["stickyseat_spop_evicted_connections_total"]
	if evicted < extra+1 {
		t.Errorf("stickyseat_spop_evicted_connections_total = %v; want at least %d (for the flood's extra connections and HAProxy's)", evicted, extra+1)
	}
	if open := m["stickyseat_spop_connections"]; open > maxConns {
		t.Errorf("stickyseat_spop_connections = %v; want at most %d", open, maxConns)
	}
	// Closings are logged, at most a line a second.
	lines := strings.Count(s.Agent.Output(), "SPOP connection limit reached")
	if elapsed := time.Since(floodStart); lines < 1 || float64(lines) > elapsed.Seconds()+1 {
		t.Errorf("%d log lines for %v closings in %s; want between 1 and one a second", lines, evicted, elapsed.Round(time.Millisecond))
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
