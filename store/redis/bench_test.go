package redis

import (
	"context"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/store"
)

// BenchmarkAssign measures decisions against a local redis-server on Redis time, from
// parallel goroutines (-cpu sets how many): new seats (every request a new user), and hits on
// 1000 seated users with and without the hit cache. It reports decisions per second, Redis
// commands (roundtrips/op) and writes (pipelines/op: below roundtrips/op when calls were
// batched) per decision.
func BenchmarkAssign(b *testing.B) {
	srv := startRedis(b)
	servers := []store.Server{{Name: "s1", Quota: maxQuota, Accepting: true}, {Name: "s2", Quota: maxQuota, Accepting: true},
		{Name: "s3", Quota: maxQuota, Accepting: true}}
	const seated = 1000
	benchmarks := []struct {
		name    string
		refresh time.Duration
		key     func(i uint64) string
	}{
		{"new", -1, func(i uint64) string { return "new-" + strconv.FormatUint(i, 10) }},
		{"hit/cache", 0, func(i uint64) string { return "hit-" + strconv.FormatUint(i%seated, 10) }},
		{"hit/nocache", -1, func(i uint64) string { return "hit-" + strconv.FormatUint(i%seated, 10) }},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			s := New(newClient(b, srv.URL()), Options{RefreshInterval: bm.refresh})
			pool := b.Name() // a fresh pool per run: b.N grows between runs
			ctx := context.Background()
			for i := range seated {
				req := store.Request{Pool: pool, Key: "hit-" + strconv.Itoa(i), Servers: servers, Idle: time.Hour}
				if _, err := s.Assign(ctx, req); err != nil {
					b.Fatalf("seat hit-%d: %v", i, err)
				}
			}
			var next atomic.Uint64
			before, beforePipelines := s.RoundTrips(), s.Pipelines()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := store.Request{Pool: pool, Key: bm.key(next.Add(1)), Servers: servers, Idle: time.Hour}
					if _, err := s.Assign(ctx, req); err != nil {
						b.Errorf("Assign(%q): %v", req.Key, err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(s.RoundTrips()-before)/float64(b.N), "roundtrips/op")
			b.ReportMetric(float64(s.Pipelines()-beforePipelines)/float64(b.N), "pipelines/op")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}

// BenchmarkHitCache measures the hit cache where it cannot help: ten times more users than it
// holds, drawn uniformly, so nearly every look-up misses and is followed by a put that evicts
// the oldest entry (miss), and what the full cache costs each garbage collection (gc).
func BenchmarkHitCache(b *testing.B) {
	const users, size = 1_000_000, DefaultCacheSize
	full := func() *hitCache {
		c := newHitCache(size, testStart)
		for i := range size {
			c.put("default", "user-"+strconv.Itoa(i), "s1", testStart, time.Hour)
		}
		return c
	}
	b.Run("miss", func(b *testing.B) {
		c := full()
		var seed atomic.Uint64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			r := rand.New(rand.NewPCG(seed.Add(1), 0))
			buf := []byte("user-")
			for pb.Next() {
				buf = strconv.AppendInt(buf[:len("user-")], int64(r.IntN(users)), 10)
				k := string(buf) // as a decoded SPOE argument arrives
				if _, ok := c.get("default", k, testStart); !ok {
					c.put("default", k, "s1", testStart, time.Hour)
				}
			}
		})
	})
	b.Run("gc", func(b *testing.B) {
		c := full()
		runtime.GC()
		b.ResetTimer()
		for range b.N {
			runtime.GC()
		}
		b.StopTimer()
		runtime.KeepAlive(c)
	})
}
