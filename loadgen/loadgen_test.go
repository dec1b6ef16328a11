package loadgen

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/agent"
	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/store/memory"
)

// startAgent serves a real agent with the memory store on a loopback port until the test
// ends: three servers with quota each.
func startAgent(t *testing.T, quota int) (string, *agent.Agent) {
	t.Helper()
	cfg := assign.Config{Pools: []assign.Pool{{
		Name:        "default",
		IdleTimeout: time.Hour,
		Servers:     []assign.Server{{Name: "s1", Quota: quota}, {Name: "s2", Quota: quota}, {Name: "s3", Quota: quota}},
	}}}
	as, err := assign.New(cfg, memory.New(memory.Options{}), assign.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := agent.New(as, agent.Options{Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	return serve(t, func(ctx context.Context, ln net.Listener) error { return a.Serve(ctx, ln) }), a
}

// serve runs fn on a loopback listener until the test ends.
func serve(t *testing.T, fn func(context.Context, net.Listener) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("serve did not return within 10s")
		}
	})
	return ln.Addr().String()
}

func TestRunCountsAddUp(t *testing.T) {
	tests := []struct {
		name  string
		quota int
		opts  Options
		want  map[string]uint64
	}{
		{
			// 100 users in order, 2000 requests: each user is new once, then comes back.
			name: "sequential users", quota: 1000,
			opts: Options{Users: 100, Dist: Sequential, Requests: 2000, Connections: 3, Pipeline: 8},
			want: map[string]uint64{"new": 100, "hit": 1900},
		},
		{
			name: "every server full", quota: 10,
			opts: Options{Users: 100, Dist: Sequential, Requests: 100, Connections: 2, Pipeline: 5},
			want: map[string]uint64{"new": 30, "full": 70},
		},
		{
			name: "only new users", quota: 1000,
			opts: Options{Users: 10, NewRatio: 1, Requests: 500, Connections: 4, Pipeline: 20},
			want: map[string]uint64{"new": 500},
		},
		{
			name: "unknown pool", quota: 10,
			opts: Options{Users: 10, Pool: "nowhere", Requests: 50, Connections: 1, Pipeline: 1},
			want: map[string]uint64{"invalid": 50},
		},
		{
			name: "zipf", quota: 1000,
			opts: Options{Users: 50, Dist: Zipf, Requests: 1000, Connections: 2, Pipeline: 4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, a := startAgent(t, tt.quota)
			tt.opts.Addr = addr
			res, err := Run(context.Background(), tt.opts)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			n := tt.opts.Requests
			if res.Sent != n || res.Decisions != n || res.Latency.Count() != n {
				t.Errorf("sent %d, decisions %d, latencies %d; want %d each", res.Sent, res.Decisions, res.Latency.Count(), n)
			}
			if got := a.Stats().Frames; got != n {
				t.Errorf("agent saw %d frames; want %d", got, n)
			}
			var sum uint64
			for _, c := range res.Statuses {
				sum += c
			}
			if sum != n {
				t.Errorf("statuses %v add up to %d; want %d", res.Statuses, sum, n)
			}
			if tt.want != nil {
				for s, c := range tt.want {
					if res.Statuses[s] != c {
						t.Errorf("statuses = %v; want %v", res.Statuses, tt.want)
						break
					}
				}
			}
			if tt.opts.NewRatio == 1 && res.NewKeys != n {
				t.Errorf("NewKeys = %d; want %d", res.NewKeys, n)
			}
			if res.ProtocolErrors != 0 || res.Elapsed <= 0 {
				t.Errorf("protocol errors %d, elapsed %s; want 0 and positive", res.ProtocolErrors, res.Elapsed)
			}
			var b strings.Builder
			if err := res.WriteReport(&b); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), "decisions/s") || !strings.Contains(b.String(), "p99.9") {
				t.Errorf("report lacks rate or quantiles:\n%s", b.String())
			}
		})
	}
}

func TestRunByDurationAndRate(t *testing.T) {
	addr, _ := startAgent(t, 1000)
	res, err := Run(context.Background(), Options{Addr: addr, Users: 100, Duration: 300 * time.Millisecond, Rate: 2000, Connections: 2})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Decisions == 0 || res.Decisions != res.Sent {
		t.Errorf("decisions %d of %d sent; want all of at least one", res.Decisions, res.Sent)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	addr, _ := startAgent(t, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res, err := Run(ctx, Options{Addr: addr, Duration: time.Hour})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Decisions != res.Sent {
		t.Errorf("decisions %d of %d sent; want every answer waited for", res.Decisions, res.Sent)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no address", Options{Requests: 1}, "no agent address"},
		{"unbounded", Options{Addr: "x:1"}, "neither a duration nor a request count bounds the run"},
		{"ratio", Options{Addr: "x:1", Requests: 1, NewRatio: 2}, "new ratio 2 is outside 0..1"},
		{"zipf s", Options{Addr: "x:1", Requests: 1, Dist: Zipf, ZipfS: 0.5}, "zipf exponent 0.5 must be above 1"},
		{"dist", Options{Addr: "x:1", Requests: 1, Dist: "normal"}, `unknown key distribution "normal" (want uniform, zipf or seq)`},
	}
	for _, tt := range tests {
		err := tt.opts.Validate()
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: Validate() = %v; want %q", tt.name, err, tt.want)
		}
	}
}
