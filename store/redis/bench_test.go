package redis

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/store"
)

// BenchmarkAssign measures decisions against a local redis-server on Redis time, from
// parallel goroutines (-cpu sets how many): new seats (every request a new user), and hits on
// 1000 seated users with and without the hit cache. It reports decisions per second and Redis
// round trips per decision.
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
			before := s.RoundTrips()
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
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}
