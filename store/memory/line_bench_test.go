package memory_test

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/store"
	"github.com/stickyseat/stickyseat/store/memory"
)

// benchLineSizes are the lengths of the line the benchmarks hold: a busy pool's, and the
// default queue-max.
var benchLineSizes = []int{1_000, 100_000}

// benchQueue is the line of the benchmarks' pool: long enough never to lapse or fill.
var benchQueue = store.Queue{Timeout: time.Hour, Max: 10_000_000}

// fillLine takes the pool's one seat and puts every key in line behind it, one microsecond
// apart.
func fillLine(tb testing.TB, s *memory.Store, clock *benchClock, keys []string, servers []store.Server) {
	tb.Helper()
	ctx := context.Background()
	req := store.Request{Pool: "bench", Servers: servers, Idle: time.Hour, Queue: benchQueue}
	for i, k := range keys {
		clock.now = clock.now.Add(time.Microsecond)
		req.Key = k
		res, err := s.Assign(ctx, req)
		if err != nil || res.Outcome != store.OutcomeQueued || res.Position != i+1 {
			tb.Fatalf("Assign(%q) = %+v, %v; want queued at %d", k, res, err, i+1)
		}
	}
}

// oneSeat is a pool of one seat, taken by the key "seated".
func oneSeat(tb testing.TB, s *memory.Store, clock *benchClock) []store.Server {
	tb.Helper()
	servers := []store.Server{{Name: "app1", Quota: 1, Accepting: true}}
	fill(tb, s, clock, []string{"seated"}, servers, time.Hour)
	return servers
}

// BenchmarkAssignQueued asks again for users waiting in a line of n places behind a full
// pool: the decision every waiting user's retry costs (the place is looked up, not scanned).
func BenchmarkAssignQueued(b *testing.B) {
	for _, n := range benchLineSizes {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			clock := &benchClock{now: start}
			s := memory.New(memory.Options{Clock: clock.Now})
			servers := oneSeat(b, s, clock)
			keys := benchKeys(n)
			fillLine(b, s, clock, keys, servers)
			ctx := context.Background()
			req := store.Request{Pool: "bench", Servers: servers, Idle: time.Hour, Queue: benchQueue}
			i := 0
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				req.Key = keys[i]
				if i++; i == n {
					i = 0
				}
				if res, err := s.Assign(ctx, req); err != nil || res.Outcome != store.OutcomeQueued {
					b.Fatalf("Assign(%q) = %+v, %v; want queued", req.Key, res, err)
				}
			}
		})
	}
}

// BenchmarkPlaceMemory reports the heap held per place in a line of 100k (the default
// queue-max), behind a full pool.
func BenchmarkPlaceMemory(b *testing.B) {
	const n = 100_000
	keys := benchKeys(n)
	var total float64
	for range b.N {
		clock := &benchClock{now: start}
		s := memory.New(memory.Options{Clock: clock.Now})
		servers := oneSeat(b, s, clock)
		before := heapAlloc()
		fillLine(b, s, clock, keys, servers)
		after := heapAlloc()
		runtime.KeepAlive(s)
		total += float64(after) - float64(before)
	}
	b.ReportMetric(total/float64(b.N)/n, "B/place")
}
