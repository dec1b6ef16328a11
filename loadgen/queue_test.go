package loadgen

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/agent"
	"github.com/stickyseat/stickyseat/agent/spop"
	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/store/memory"
)

// startQueueAgent serves a real agent whose pool (three servers with quota each) does w
// with users who find no seat.
func startQueueAgent(t *testing.T, quota int, w assign.WhenFull) string {
	t.Helper()
	cfg := assign.Config{Pools: []assign.Pool{{
		Name: "default", IdleTimeout: time.Hour, WhenFull: w, QueueTimeout: time.Hour, QueueMax: 1000,
		Servers: []assign.Server{{Name: "s1", Quota: quota}, {Name: "s2", Quota: quota}, {Name: "s3", Quota: quota}},
	}}}
	as, err := assign.New(cfg, memory.New(memory.Options{}), assign.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := agent.New(as, agent.Options{Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	return serve(t, a.Serve)
}

// TestRunWithALine: 100 users in order on 30 seats: 30 are seated and 70 wait at places 1
// to 70; expecting the line passes, expecting refusals fails the run, and the reverse.
func TestRunWithALine(t *testing.T) {
	queue, reject := assign.WhenFullQueue, assign.WhenFullReject
	addr := startQueueAgent(t, 10, queue)
	res, err := Run(context.Background(), Options{Addr: addr, Users: 100, Dist: Sequential, Requests: 100,
		Connections: 1, Pipeline: 1, WhenFull: &queue})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Statuses["new"] != 30 || res.Statuses["queued"] != 70 || res.MaxPlace != 70 {
		t.Errorf("statuses %v, places up to %d; want new=30 queued=70, up to 70", res.Statuses, res.MaxPlace)
	}
	var b strings.Builder
	if err := res.WriteReport(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "queued=70 (places in line up to 70)") {
		t.Errorf("report lacks the line:\n%s", b.String())
	}
	if _, err := Run(context.Background(), Options{Addr: addr, Users: 100, Requests: 50, WhenFull: &reject}); !errors.Is(err, ErrProtocol) ||
		!strings.Contains(err.Error(), "status queued, want full") {
		t.Errorf("Run expecting refusals from a pool with a line = %v; want a protocol error", err)
	}

	addr = startQueueAgent(t, 10, reject)
	if _, err := Run(context.Background(), Options{Addr: addr, Users: 100, Dist: Sequential, Requests: 100, WhenFull: &queue}); !errors.Is(err, ErrProtocol) ||
		!strings.Contains(err.Error(), "status full, want queued") {
		t.Errorf("Run expecting a line from a rejecting pool = %v; want a protocol error", err)
	}
	res, err = Run(context.Background(), Options{Addr: addr, Users: 100, Dist: Sequential, Requests: 100, WhenFull: &reject})
	if err != nil || res.Statuses["full"] != 70 || res.MaxPlace != 0 {
		t.Errorf("Run expecting refusals from a rejecting pool = %v, %v; want full=70 and no place", res.Statuses, err)
	}
}

// A place travels with status queued only, as a positive decimal.
func TestRunPlaceContract(t *testing.T) {
	good := agentHello("2.0", "pipelining,async")
	for _, tt := range []struct {
		name string
		vars []any
		want string
	}{
		{"queued without a place", []any{"status", "queued"}, "status queued with position 0"},
		{"a place when full", []any{"status", "full", "position", "3"}, "status full with position 3"},
		{"place zero", []any{"status", "queued", "position", "0"}, "status queued with position -1"},
		{"place not a number", []any{"status", "queued", "position", "3rd"}, "status queued with position -1"},
		{"place as an int", []any{"status", "queued", "position", uint32(3)}, "position of data type 3, want string"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeAgent(t, good, func(h spop.Header) []byte { return ackFrame(h, tt.vars...) })
			_, err := Run(context.Background(), Options{Addr: addr, Requests: 10, Connections: 1, Timeout: 300 * time.Millisecond})
			if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v; want an ErrProtocol mentioning %q", err, tt.want)
			}
		})
	}
}

func TestParsePlace(t *testing.T) {
	for in, want := range map[string]int{"1": 1, "70": 70, "1000000000": 1e9, "": -1, "0": -1, "01": -1, "-1": -1, "1e3": -1,
		"1000000001": -1, "99999999999": -1} {
		if got := parsePlace([]byte(in)); got != want {
			t.Errorf("parsePlace(%q) = %d; want %d", in, got, want)
		}
	}
}
