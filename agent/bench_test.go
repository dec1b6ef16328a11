package agent_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/agent"
	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/loadgen"
	"github.com/stickyseat/stickyseat/store/memory"
)

// BenchmarkAgent measures whole decisions over SPOP on loopback, in one process: the load
// generator (4 connections x 20 NOTIFYs in flight, HAProxy's default max-waiting-frames)
// against an agent deciding with assign and the memory store, 1000 users already seated.
// Allocations count both sides; the load generator's are the same from one version of the
// agent to the next, so benchstat's deltas are the agent's.
//
//	go test -run '^$' -bench BenchmarkAgent -benchmem -count 8 ./agent
func BenchmarkAgent(b *testing.B) {
	const users = 1000
	a, err := assign.New(assign.Config{Pools: []assign.Pool{{Name: "web", IdleTimeout: time.Hour, Servers: []assign.Server{
		{Name: "s1", Quota: users, State: assign.StateUp}, {Name: "s2", Quota: users, State: assign.StateUp}, {Name: "s3", Quota: users, State: assign.StateUp},
	}}}}, memory.New(memory.Options{}), assign.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ag := agent.New(a, agent.Options{Logger: zerolog.Nop()})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ag.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			b.Errorf("Serve: %v", err)
		}
	}()

	opts := loadgen.Options{Addr: ln.Addr().String(), Users: users, Dist: loadgen.Sequential, Requests: users}
	if _, err := loadgen.Run(ctx, opts); err != nil {
		b.Fatalf("seating the users: %v", err)
	}
	opts.Dist, opts.Requests = loadgen.Uniform, uint64(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	res, err := loadgen.Run(ctx, opts)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if res.Decisions != uint64(b.N) || res.Statuses["hit"] != uint64(b.N) || res.ProtocolErrors != 0 {
		b.Fatalf("%d decisions, statuses %v, %d protocol errors; want %d hits", res.Decisions, res.Statuses, res.ProtocolErrors, b.N)
	}
	b.ReportMetric(res.Rate(), "decisions/s")
	b.ReportMetric(float64(res.Latency.Quantile(0.99))/float64(time.Microsecond), "p99-µs")
}
