package redis

import (
	"context"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stickyseat/stickyseat/admin"
	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/metrics"
)

// fillSeats writes n live seats straight into the key layout the script keeps, spread over
// servers, scored now: far faster than n script calls, and the same data for the readers.
func fillSeats(tb testing.TB, s *Store, pool string, servers []string, n int) {
	tb.Helper()
	ctx := context.Background()
	now, err := s.client.Time(ctx).Result()
	if err != nil {
		tb.Fatal(err)
	}
	score := float64(now.UnixMicro())
	const batch = 5000
	for i := 0; i < n; i += batch {
		pipe := s.client.Pipeline()
		for j := i; j < min(n, i+batch); j++ {
			key := "user-" + strconv.Itoa(j)
			srv := servers[j%len(servers)]
			pipe.ZAdd(ctx, s.serverKey(pool, srv), goredis.Z{Score: score, Member: key})
			pipe.Set(ctx, s.userKey(pool, key), srv, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			tb.Fatal(err)
		}
	}
}

// slowlog logs every command from now on and returns a function that lists them.
func slowlog(tb testing.TB, c goredis.UniversalClient) func() []goredis.SlowLog {
	tb.Helper()
	ctx := context.Background()
	for _, args := range [][]any{{"config", "set", "slowlog-log-slower-than", "0"}, {"config", "set", "slowlog-max-len", "10000"}, {"slowlog", "reset"}} {
		if err := c.Do(ctx, args...).Err(); err != nil {
			tb.Fatal(err)
		}
	}
	return func() []goredis.SlowLog {
		logs, err := c.SlowLogGet(ctx, 10000).Result()
		if err != nil {
			tb.Fatal(err)
		}
		return logs
	}
}

// TestInspectionCostsPerServer pins what a metrics scrape and the status page cost in Redis:
// one counting command per server whatever the number of seats, and seat listings bounded by
// their limit, so a scrape stays cheap with hundreds of thousands of seats.
func TestInspectionCostsPerServer(t *testing.T) {
	srv := startRedis(t)
	s := New(newClient(t, srv.URL()), Options{Timeout: 5 * time.Second})
	servers := []string{"s1", "s2", "s3"}
	fillSeats(t, s, "scrape", servers, 3000)
	logged := slowlog(t, srv.Client())
	ctx := context.Background()
	counts, err := s.LiveCounts(ctx, "scrape", servers, time.Hour)
	if err != nil || counts["s1"]+counts["s2"]+counts["s3"] != 3000 {
		t.Fatalf("LiveCounts = %v, %v; want 3000 seats", counts, err)
	}
	if seats, err := s.LiveSeats(ctx, "scrape", servers, time.Hour, 0); err != nil || len(seats) != 0 {
		t.Fatalf("LiveSeats(limit 0) = %d seats, %v; want none", len(seats), err)
	}
	if seats, err := s.LiveSeats(ctx, "scrape", servers, time.Hour, 5); err != nil || len(seats) != 5 {
		t.Fatalf("LiveSeats(limit 5) = %d seats, %v; want 5", len(seats), err)
	}
	byName := map[string]int{}
	for _, l := range logged() {
		name := strings.ToLower(l.Args[0])
		byName[name]++
		if name == "zrevrangebyscore" && !strings.EqualFold(strings.Join(l.Args, " "), strings.Join(l.Args[:4], " ")+" withscores limit 0 5") {
			t.Errorf("seat listing %q: want WITHSCORES LIMIT 0 5", l.Args)
		}
	}
	delete(byName, "slowlog")
	want := map[string]int{"time": 2, "zcount": 3, "zrevrangebyscore": 3}
	for name, n := range byName {
		if want[name] != n {
			t.Errorf("Redis ran %s %d times; want %d (all: %v)", name, n, want[name], byName)
		}
	}
}

// BenchmarkScrape200k is what a Prometheus scrape asks of Redis with 200k live seats over
// three servers: the counts (one ZCOUNT per server) and no seat listing. It reports the
// slowest single Redis command of the run.
//
//	go test -run '^$' -bench Scrape200k ./store/redis
func BenchmarkScrape200k(b *testing.B) {
	srv := startRedis(b)
	s := New(newClient(b, srv.URL()), Options{Timeout: 5 * time.Second})
	servers := []string{"s1", "s2", "s3"}
	fillSeats(b, s, "scrape", servers, 200_000)
	logged := slowlog(b, srv.Client())
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.LiveCounts(ctx, "scrape", servers, time.Hour); err != nil {
			b.Fatal(err)
		}
		if _, err := s.LiveSeats(ctx, "scrape", servers, time.Hour, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	var slowest time.Duration
	for _, l := range logged() {
		slowest = max(slowest, l.Duration)
	}
	b.ReportMetric(float64(slowest.Microseconds()), "slowest-cmd-µs")
}

// BenchmarkMetricsScrape200k is a whole Prometheus scrape of an agent on Redis with 200k live
// seats over three servers: the metrics handler, the admin view it reads (counts, no seat
// listing) and the store, as `serve --metrics-listen` wires them. It reports the slowest
// single Redis command of the run.
//
//	go test -run '^$' -bench MetricsScrape200k ./store/redis
func BenchmarkMetricsScrape200k(b *testing.B) {
	srv := startRedis(b)
	s := New(newClient(b, srv.URL()), Options{Timeout: 5 * time.Second})
	servers := []string{"s1", "s2", "s3"}
	fillSeats(b, s, "scrape", servers, 200_000)
	cfg := assign.Config{Pools: []assign.Pool{{Name: "scrape", IdleTimeout: time.Hour, Servers: []assign.Server{
		{Name: "s1", Quota: 100_000}, {Name: "s2", Quota: 100_000}, {Name: "s3", Quota: 100_000}}}}}
	a, err := assign.New(cfg, s, assign.Options{})
	if err != nil {
		b.Fatal(err)
	}
	m := metrics.New(metrics.Sources{Version: "bench", Pools: admin.New(cfg, a, s, s, admin.Options{}).Pools, Store: s})
	h := m.Handler()
	logged := slowlog(b, srv.Client())
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), `stickyseat_seats_used{pool="scrape",server="s1"} 66667`) {
			b.Fatalf("scrape: %d\n%s", rec.Code, rec.Body.String())
		}
	}
	b.StopTimer()
	var slowest time.Duration
	for _, l := range logged() {
		slowest = max(slowest, l.Duration)
	}
	b.ReportMetric(float64(slowest.Microseconds()), "slowest-cmd-µs")
}
