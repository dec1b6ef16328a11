package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/internal/testbed"
)

// TestServerDown stops one backend under a real haproxy with health checks: from HAProxy's
// report on, the server gets no new users; its users keep their seat for the down grace (and
// are refused, their server being down), then move; when it comes back it takes users again.
// All along, /api/pools, `admin pools` and /metrics show the state the decisions apply:
// down-in-grace, then down, then up again.
func TestServerDown(t *testing.T) { forEachHAProxy(t, testServerDown) }

func testServerDown(t *testing.T, bin string) {
	// Long enough for the state to be sampled many times within it.
	const grace = 2 * time.Second
	s := startStack(t, testbed.StackOptions{HAProxyBin: bin, Mode: "tcp", Servers: []string{"s1", "s2", "s3"},
		MaxUsers: 3, Idle: time.Hour, HealthChecks: true,
		Defaults: []string{"default-server inter 100ms fall 1 rise 1"},
		AgentArgs: []string{"--down-grace", grace.String(),
			"--metrics-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	shown := newStateProbe(t, s.Agent)
	if api, metric := shown.s1(t); api != "up" || metric != "up" {
		t.Errorf("s1 before any report: /api/pools %q, /metrics %q; want up", api, metric)
	}
	var clients []*testbed.Client
	for i := 1; i <= 8; i++ {
		clients = append(clients, testbed.NewClient(fmt.Sprintf("client-%d", i), fmt.Sprintf("127.0.0.%d", 10+i), ""))
	}
	seat := map[string]string{}
	for _, c := range clients[:6] {
		r, err := c.Get(ctx, s.Frontend)
		if err != nil || !r.Seated() {
			t.Fatalf("%s: %s, %v; want a seat", c.Name, r, err)
		}
		seat[c.Name] = r.Server
	}
	if seat["client-1"] != "s1" || seat["client-4"] != "s1" {
		t.Fatalf("seats %v; want client-1 and client-4 on s1", seat)
	}

	s1 := s.Backends[0]
	s1.Stop()
	stopped := time.Now()
	// client-1 is refused while HAProxy sees s1 down and the grace runs, then moves.
	var moved testbed.Reply
	var apiSeen, metricSeen []string // s1's successive states, repeats collapsed
	for {
		r, err := clients[0].Get(ctx, s.Frontend)
		if err != nil {
			t.Fatal(err)
		}
		api, metric := shown.s1(t)
		apiSeen, metricSeen = appendNew(apiSeen, api), appendNew(metricSeen, metric)
		if r.Seated() && r.Server != "s1" {
			moved = r
			break
		}
		if time.Since(stopped) > 15*time.Second {
			t.Fatalf("client-1 not moved 15s after s1 stopped (last reply %s)", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if waited := time.Since(stopped); waited < grace {
		t.Errorf("client-1 moved %s after s1 stopped; the down grace is %s", waited, grace)
	}
	// Once the agent moved client-1, it treats s1 as down: so do the API, the CLI and the metric.
	api, metric := shown.s1(t)
	apiSeen, metricSeen = appendNew(apiSeen, api), appendNew(metricSeen, metric)
	want := []string{"up", "down-in-grace", "down"}
	for what, seen := range map[string][]string{"/api/pools": apiSeen, "/metrics": metricSeen} {
		if !slices.Equal(seen, want) && !slices.Equal(seen, want[1:]) {
			t.Errorf("s1 in %s from its stop until client-1 moved: %v; want %v", what, seen, want)
		}
	}
	if out, err := execCommand(ctx, agentBin, "admin", "pools", "--admin-addr", shown.admin, "--seats", "0"); err != nil || s1State(t, out) != "down" {
		t.Errorf("admin pools while s1 is down: %v\n%s\nwant s1 with state down", err, out)
	}
	// A newcomer never lands on the down server.
	r, err := clients[6].Get(ctx, s.Frontend)
	if err != nil || !r.Seated() || r.Server == "s1" {
		t.Errorf("newcomer while s1 is down: %s, %v; want a seat on s2 or s3", r, err)
	}
	if r, err := clients[0].Get(ctx, s.Frontend); err != nil || r.Server != moved.Server {
		t.Errorf("client-1 after moving: %s, %v; want it to stay on %s", r, err, moved.Server)
	}

	if err := s1.Restart(); err != nil {
		t.Fatal(err)
	}
	// s1 is back and nearly empty (client-4 never came back to be moved): the next newcomer
	// lands there once HAProxy sees it up.
	deadline := time.Now().Add(15 * time.Second)
	for {
		r, err := clients[7].Get(ctx, s.Frontend)
		if err != nil {
			t.Fatal(err)
		}
		if r.Server == "s1" {
			break
		}
		if r.Seated() {
			t.Fatalf("newcomer seated on %s after s1 came back; want s1 (the least used)", r.Server)
		}
		if time.Now().After(deadline) {
			t.Fatalf("newcomer still refused 15s after s1 came back (%s)", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if api, metric := shown.s1(t); api != "up" || metric != "up" {
		t.Errorf("s1 back and seating users: /api/pools %q, /metrics %q; want up", api, metric)
	}
}

// stateProbe reads a server's state from a running agent's admin API and metrics.
type stateProbe struct{ admin, metrics string }

func newStateProbe(t *testing.T, agent *testbed.Process) stateProbe {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := stateProbe{admin: testbed.LogField(agent.Output(), "admin listening", "admin_listen"),
			metrics: testbed.LogField(agent.Output(), "metrics listening", "metrics_listen")}
		if p.admin != "" && p.metrics != "" {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent did not log its admin and metrics addresses:\n%s", agent.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// s1 returns server s1's state in /api/pools and in stickyseat_server_state (the state whose
// sample is 1; all of them, comma-separated, if that is not exactly one).
func (p stateProbe) s1(t *testing.T) (api, metric string) {
	t.Helper()
	api = s1State(t, httpGet(t, "http://"+p.admin+"/api/pools?seats=0"))
	const prefix = `stickyseat_server_state{pool="default",server="s1",state="`
	var at1 []string
	for _, line := range strings.Split(httpGet(t, "http://"+p.metrics+"/metrics"), "\n") {
		if st, ok := strings.CutPrefix(line, prefix); ok && strings.HasSuffix(st, `"} 1`) {
			at1 = append(at1, strings.TrimSuffix(st, `"} 1`))
		}
	}
	return api, strings.Join(at1, ",")
}

// s1State returns server s1's state in pool default from the JSON of /api/pools.
func s1State(t *testing.T, apiPools string) string {
	t.Helper()
	var pools []struct {
		Name    string
		Servers []struct{ Name, State string }
	}
	if err := json.Unmarshal([]byte(apiPools), &pools); err != nil {
		t.Fatalf("pools JSON: %v\n%s", err, apiPools)
	}
	for _, pl := range pools {
		for _, sv := range pl.Servers {
			if pl.Name == "default" && sv.Name == "s1" {
				return sv.State
			}
		}
	}
	return ""
}

func httpGet(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d, %v", u, resp.StatusCode, err)
	}
	return string(b)
}

// appendNew appends v unless it repeats the last element.
func appendNew(seen []string, v string) []string {
	if len(seen) > 0 && seen[len(seen)-1] == v {
		return seen
	}
	return append(seen, v)
}
