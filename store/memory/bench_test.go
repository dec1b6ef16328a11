package memory_test

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"strconv"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/store"
	"github.com/stickyseat/stickyseat/store/memory"
)

// benchSizes are the numbers of live seats the benchmarks hold in one pool.
var benchSizes = []int{10_000, 1_000_000}

// benchClock is a clock the benchmark moves by hand, from one goroutine.
type benchClock struct{ now time.Time }

func (c *benchClock) Now() time.Time { return c.now }

// benchKeys returns n ≤ 1<<24 distinct keys shaped like an IPv4 source address, the tcp
// example's key.
func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
	}
	return keys
}

// benchServers returns three accepting servers with room for n seats in all.
func benchServers(n int) []store.Server {
	return []store.Server{
		{Name: "app1", Quota: n/3 + 1, Accepting: true},
		{Name: "app2", Quota: n/3 + 1, Accepting: true},
		{Name: "app3", Quota: n/3 + 1, Accepting: true},
	}
}

// fill grants a seat to each key, one microsecond apart.
func fill(tb testing.TB, s *memory.Store, clock *benchClock, keys []string, servers []store.Server, idle time.Duration) {
	tb.Helper()
	ctx := context.Background()
	for _, k := range keys {
		clock.now = clock.now.Add(time.Microsecond)
		res, err := s.Assign(ctx, store.Request{Pool: "bench", Key: k, Servers: servers, Idle: idle})
		if err != nil || res.Outcome != store.OutcomeNew {
			tb.Fatalf("Assign(%q) = %+v, %v; want a new seat", k, res, err)
		}
	}
}

// BenchmarkAssignHit refreshes existing seats in a pool holding n live seats.
func BenchmarkAssignHit(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			clock := &benchClock{now: start}
			s := memory.New(memory.Options{Clock: clock.Now})
			keys := benchKeys(n)
			servers := benchServers(n)
			fill(b, s, clock, keys, servers, time.Hour)
			ctx := context.Background()
			req := store.Request{Pool: "bench", Servers: servers, Idle: time.Hour}
			i := 0
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				req.Key = keys[i]
				if i++; i == n {
					i = 0
				}
				if res, err := s.Assign(ctx, req); err != nil || res.Outcome != store.OutcomeHit {
					b.Fatalf("Assign(%q) = %+v, %v; want a hit", req.Key, res, err)
				}
			}
		})
	}
}

// BenchmarkAssignNew grants a new seat per operation in a pool holding n live seats: the
// clock moves one microsecond per operation and seats live n microseconds, so every new seat
// also expires the oldest one, as in a steady state of churn.
func BenchmarkAssignNew(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			clock := &benchClock{now: start}
			s := memory.New(memory.Options{Clock: clock.Now})
			idle := time.Duration(n) * time.Microsecond
			// A key comes back 2n operations after its seat was granted, n after it expired.
			keys := benchKeys(2 * n)
			servers := benchServers(n)
			fill(b, s, clock, keys[:n], servers, idle)
			ctx := context.Background()
			req := store.Request{Pool: "bench", Servers: servers, Idle: idle}
			i := n
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				clock.now = clock.now.Add(time.Microsecond)
				req.Key = keys[i]
				if i++; i == len(keys) {
					i = 0
				}
				if res, err := s.Assign(ctx, req); err != nil || res.Outcome != store.OutcomeNew {
					b.Fatalf("Assign(%q) = %+v, %v; want a new seat", req.Key, res, err)
				}
			}
			b.StopTimer()
			if got := s.Seats("bench"); got != n {
				b.Fatalf("Seats(bench) = %d; want %d", got, n)
			}
		})
	}
}

// BenchmarkAssignHitParallel refreshes seats from every P at once, all in one pool: the cost
// of its one mutex under contention.
func BenchmarkAssignHitParallel(b *testing.B) {
	const n = 10_000
	clock := &benchClock{now: start}
	s := memory.New(memory.Options{Clock: clock.Now})
	keys := benchKeys(n)
	servers := benchServers(n)
	fill(b, s, clock, keys, servers, time.Hour)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		req := store.Request{Pool: "bench", Servers: servers, Idle: time.Hour}
		i := 0
		for pb.Next() {
			req.Key = keys[i]
			if i++; i == n {
				i = 0
			}
			if _, err := s.Assign(ctx, req); err != nil {
				b.Errorf("Assign(%q): %v", req.Key, err)
				return
			}
		}
	})
}

// BenchmarkSeatMemory reports the heap held per live seat, map and keys included, in a pool
// of 1M seats.
func BenchmarkSeatMemory(b *testing.B) {
	const n = 1_000_000
	keys := benchKeys(n)
	servers := benchServers(n)
	var total float64
	for range b.N {
		clock := &benchClock{now: start}
		before := heapAlloc()
		s := memory.New(memory.Options{Clock: clock.Now})
		fill(b, s, clock, keys, servers, time.Hour)
		after := heapAlloc()
		if got := s.Seats("bench"); got != n {
			b.Fatalf("Seats(bench) = %d; want %d", got, n)
		}
		runtime.KeepAlive(s)
		total += float64(after) - float64(before)
	}
	b.ReportMetric(total/float64(b.N)/n, "B/seat")
}

// BenchmarkGCWithSeats times a forced, complete garbage collection while one pool holds n live
// seats: the price the store puts on every GC cycle of the process. It also reports the heap
// the collector has to scan per seat (/gc/scan/heap:bytes) and the GC CPU per cycle, both from
// runtime/metrics.
func BenchmarkGCWithSeats(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			clock := &benchClock{now: start}
			s := memory.New(memory.Options{Clock: clock.Now})
			// The keys are dropped after the fill: only the store's heap stays live.
			fill(b, s, clock, benchKeys(n), benchServers(n), time.Hour)
			runtime.GC()
			samples := []metrics.Sample{{Name: "/gc/scan/heap:bytes"}, {Name: "/cpu/classes/gc/total:cpu-seconds"}}
			metrics.Read(samples)
			cpu := samples[1].Value.Float64()
			b.ResetTimer()
			for b.Loop() {
				runtime.GC()
			}
			b.StopTimer()
			metrics.Read(samples)
			b.ReportMetric(float64(samples[0].Value.Uint64())/float64(n), "scan-B/seat")
			b.ReportMetric((samples[1].Value.Float64()-cpu)*1e9/float64(b.N), "gc-cpu-ns/op")
			if got := s.Seats("bench"); got != n {
				b.Fatalf("Seats(bench) = %d; want %d", got, n)
			}
		})
	}
}

// BenchmarkFillPause fills one pool with n seats, one request at a time, and reports the
// longest single Assign: the pause every request of the pool waits out while the store grows
// its arrays. Run it with -benchtime 1x; each iteration is a whole fill.
func BenchmarkFillPause(b *testing.B) {
	for _, n := range []int{1_000_000, 4_000_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			benchNewSeatsPause(b, benchKeys(n), time.Hour, 0)
		})
	}
}

// BenchmarkChurnPause holds n live seats while as many new users arrive as old ones expire
// (one in, one out per request, 2n requests after n to fill), and reports the longest single
// Assign of the churn: the pause comes from reclaiming the keys of expired seats.
// -benchtime 1x.
func BenchmarkChurnPause(b *testing.B) {
	for _, n := range []int{1_000_000, 4_000_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			benchNewSeatsPause(b, benchKeys(3*n), time.Duration(n)*time.Microsecond, n)
		})
	}
}

// benchNewSeatsPause gives each key a new seat in one pool, a microsecond apart, with idle
// time idle, and reports the longest single Assign after the first skip requests.
func benchNewSeatsPause(b *testing.B, keys []string, idle time.Duration, skip int) {
	servers := benchServers(len(keys))
	ctx := context.Background()
	var worst time.Duration
	for b.Loop() {
		clock := &benchClock{now: start}
		s := memory.New(memory.Options{Clock: clock.Now})
		req := store.Request{Pool: "bench", Servers: servers, Idle: idle}
		for i, k := range keys {
			clock.now = clock.now.Add(time.Microsecond)
			req.Key = k
			t0 := time.Now()
			res, err := s.Assign(ctx, req)
			if d := time.Since(t0); i >= skip && d > worst {
				worst = d
			}
			if err != nil || res.Outcome != store.OutcomeNew {
				b.Fatalf("Assign(%q) = %+v, %v; want a new seat", k, res, err)
			}
		}
	}
	b.ReportMetric(float64(worst.Microseconds()), "worst-µs")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkSavePause saves the state of a pool of n seats while requests refresh them, and
// reports the longest single Assign during the save: the time Save holds the pool's lock to
// copy it. -benchtime 1x.
func BenchmarkSavePause(b *testing.B) {
	for _, n := range []int{1_000_000, 4_000_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			keys := benchKeys(n)
			servers := benchServers(n)
			clock := &benchClock{now: start}
			s := memory.New(memory.Options{Clock: clock.Now})
			fill(b, s, clock, keys, servers, time.Hour)
			ctx := context.Background()
			req := store.Request{Pool: "bench", Servers: servers, Idle: time.Hour}
			var worst time.Duration
			for b.Loop() {
				done := make(chan error)
				go func() {
					_, err := s.Save(io.Discard)
					done <- err
				}()
				for i := 0; ; i++ {
					select {
					case err := <-done:
						if err != nil {
							b.Fatal(err)
						}
					default:
						req.Key = keys[i%n]
						t0 := time.Now()
						if _, err := s.Assign(ctx, req); err != nil {
							b.Fatal(err)
						}
						worst = max(worst, time.Since(t0))
						continue
					}
					break
				}
			}
			b.ReportMetric(float64(worst.Microseconds()), "worst-µs")
			b.ReportMetric(0, "ns/op")
		})
	}
}
