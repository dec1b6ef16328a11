package assign_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/store/memory"
)

// benchAssigner returns an Assigner over a memory store already holding live seats.
func benchAssigner(b *testing.B, live int) *assign.Assigner {
	b.Helper()
	var servers []assign.Server
	for i := 0; i < 10; i++ {
		servers = append(servers, up(fmt.Sprintf("s%d", i), live/10+1_000_000))
	}
	a, err := assign.New(assign.Config{Pools: []assign.Pool{{Name: "web", Servers: servers, IdleTimeout: time.Hour}}}, memory.New(memory.Options{}), assign.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < live; i++ {
		if d := a.Decide(ctx, assign.Request{Key: "user-" + strconv.Itoa(i)}); d.Status != assign.StatusNew {
			b.Fatalf("fill: %s", d.Status)
		}
	}
	return a
}

// BenchmarkDecide measures one decision through assign and the memory store, the whole
// per-message cost except SPOP decoding.
//
//	go test -run '^$' -bench BenchmarkDecide -benchmem ./assign
func BenchmarkDecide(b *testing.B) {
	for _, live := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("hit/live=%d", live), func(b *testing.B) { benchHits(b, live, false) })
		// As HAProxy sends it with health checks on (haproxy-config's default): every server
		// reported, none down.
		b.Run(fmt.Sprintf("hit-health/live=%d", live), func(b *testing.B) { benchHits(b, live, true) })
		b.Run(fmt.Sprintf("new/live=%d", live), func(b *testing.B) {
			a := benchAssigner(b, live)
			keys := make([]string, b.N)
			for i := range keys {
				keys[i] = "newcomer-" + strconv.Itoa(i)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if d := a.Decide(ctx, assign.Request{Key: keys[i]}); d.Status != assign.StatusNew {
					b.Fatalf("got %s; want new", d.Status)
				}
			}
		})
	}
}

// benchHits measures hits over 4096 of live seats, with or without health arguments.
func benchHits(b *testing.B, live int, health bool) {
	a := benchAssigner(b, live)
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = "user-" + strconv.Itoa(i*(live/len(keys)))
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if d := a.Decide(ctx, assign.Request{Key: keys[i%len(keys)], Health: health}); d.Status != assign.StatusHit {
			b.Fatalf("got %s; want hit", d.Status)
		}
	}
}
