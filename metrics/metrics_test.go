package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/agent"
	"github.com/stickyseat/stickyseat/assign"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, err := io.ReadAll(rec.Result().Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// TestObserveDecisionCounts: every decision lands in its own (pool, status) series, from
// many goroutines at once, including pools first seen concurrently.
func TestObserveDecisionCounts(t *testing.T) {
	m := New(Sources{Version: "test"})
	pools := []string{"web", "api", ""}
	statuses := []assign.Status{assign.StatusHit, assign.StatusNew, assign.StatusFull, assign.StatusInvalid}
	const perSeries = 250
	var wg sync.WaitGroup
	for _, pool := range pools {
		for _, st := range statuses {
			for range 2 {
				wg.Go(func() {
					for range perSeries / 2 {
						m.ObserveDecision(assign.Decision{Pool: pool, Status: st}, time.Microsecond)
					}
				})
			}
		}
	}
	wg.Wait()
	out := scrape(t, m)
	for _, pool := range pools {
		if pool == "" {
			pool = UnknownPool // decisions in no pool are labelled, never pool=""
		}
		for _, st := range statuses {
			line := `stickyseat_decisions_total{pool="` + pool + `",status="` + st.String() + `"} 250`
			if !strings.Contains(out, line+"\n") {
				t.Errorf("scrape lacks %q", line)
			}
		}
	}
	if want := "stickyseat_decision_duration_seconds_count 3000\n"; !strings.Contains(out, want) {
		t.Errorf("scrape lacks %q", want)
	}
	if strings.Contains(out, `pool=""`) {
		t.Errorf("a series with an empty pool label:\n%s", out)
	}
	if strings.Contains(out, `status="moved"`) {
		t.Errorf("a series without decisions was created:\n%s", out)
	}
}

// BenchmarkObserveDecision is the per-decision cost of the metrics.
func BenchmarkObserveDecision(b *testing.B) {
	m := New(Sources{Version: "bench"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveDecision(assign.Decision{Pool: "web", Status: assign.StatusHit}, time.Microsecond)
		}
	})
}

// storeStats are fixed counters, as the Redis store would report them.
type storeStats struct{ errors, roundTrips, pipelines, cacheHits uint64 }

func (s storeStats) Errors() uint64     { return s.errors }
func (s storeStats) RoundTrips() uint64 { return s.roundTrips }
func (s storeStats) Pipelines() uint64  { return s.pipelines }
func (s storeStats) CacheHits() uint64  { return s.cacheHits }

// TestStoreCounters: each counter of the store is exported under its own name, and none
// without a store.
func TestStoreCounters(t *testing.T) {
	out := scrape(t, New(Sources{Version: "test", Store: storeStats{errors: 3, roundTrips: 640, pipelines: 25, cacheHits: 9000}}))
	for _, want := range []string{
		"stickyseat_store_errors_total 3\n",
		"stickyseat_store_round_trips_total 640\n",
		"stickyseat_store_pipelines_total 25\n",
		"stickyseat_cache_hits_total 9000\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if out := scrape(t, New(Sources{Version: "test"})); strings.Contains(out, "stickyseat_store_") || strings.Contains(out, "stickyseat_cache_") {
		t.Errorf("a scrape without a store has store counters:\n%s", out)
	}
}

// TestLatencyBucketsCoverTheDecisionTimeout: the histogram has a bound at the decision
// timeout and one past it, so decisions cut by the deadline are not lumped with every
// slow one in +Inf.
func TestLatencyBucketsCoverTheDecisionTimeout(t *testing.T) {
	for _, tt := range []struct {
		timeout time.Duration
		want    []string // bounds that must exist
	}{
		{0, []string{"0.25", "0.5", "1"}}, // the agent's default, 500ms
		{2 * time.Second, []string{"0.25", "0.5", "1", "2", "4"}},
		{100 * time.Millisecond, []string{"0.05", "0.1", "0.2"}},
	} {
		m := New(Sources{Version: "test", DecisionTimeout: tt.timeout})
		m.ObserveDecision(assign.Decision{Pool: "web", Status: assign.StatusError}, tt.timeout+time.Millisecond)
		out := scrape(t, m)
		for _, le := range tt.want {
			if !strings.Contains(out, `stickyseat_decision_duration_seconds_bucket{le="`+le+`"}`) {
				t.Errorf("timeout %s: no bucket le=%s:\n%s", tt.timeout, le, out)
			}
		}
		b := latencyBuckets(tt.timeout)
		for i := 1; i < len(b); i++ {
			if b[i] <= b[i-1] {
				t.Errorf("timeout %s: buckets not increasing: %v", tt.timeout, b)
			}
		}
	}
}

// TestAgentCounters: the agent's connection counters are exported, the HELLO timeouts
// among them.
func TestAgentCounters(t *testing.T) {
	out := scrape(t, New(Sources{Version: "test", Agent: func() agent.Stats {
		return agent.Stats{Connections: 7, RefusedConnections: 5, HelloTimeouts: 3, BadFrames: 2, Open: 1}
	}}))
	for _, want := range []string{
		"stickyseat_spop_connections_total 7\n",
		"stickyseat_spop_refused_connections_total 5\n",
		"stickyseat_spop_hello_timeouts_total 3\n",
		"stickyseat_spop_bad_frames_total 2\n",
		"stickyseat_spop_connections 1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

// TestUnknownPoolIsNoPoolName: the label of decisions made in no pool is a name no pool
// can have, so its series never mix with a real pool's.
func TestUnknownPoolIsNoPoolName(t *testing.T) {
	if err := assign.ValidName(UnknownPool); err == nil {
		t.Errorf("assign.ValidName(%q) = nil; want the label of decisions in no pool refused as a pool name", UnknownPool)
	}
}
