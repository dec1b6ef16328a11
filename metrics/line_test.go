package metrics

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/admin"
	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/store/memory"
	"github.com/stickyseat/stickyseat/store/storetest"
)

// TestQueueGauges: the line's length and its lapsed places are scraped per pool, and only for
// pools with a line.
func TestQueueGauges(t *testing.T) {
	c := storetest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	cfg := assign.Config{Pools: []assign.Pool{
		{Name: "web", IdleTimeout: time.Hour, Servers: []assign.Server{{Name: "s1", Quota: 1}}, WhenFull: assign.WhenFullQueue, QueueTimeout: time.Minute, QueueMax: 10},
		{Name: "api", IdleTimeout: time.Hour, Servers: []assign.Server{{Name: "a1", Quota: 1}}},
	}}
	st := memory.New(memory.Options{Clock: c.Now})
	a, err := assign.New(cfg, st, assign.Options{Clock: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	m := New(Sources{Version: "test", Pools: admin.New(cfg, a, st, st, admin.Options{Clock: c.Now}).Pools})
	for _, key := range []string{"u1", "u2", "u3", "u4"} {
		a.Decide(context.Background(), assign.Request{Pool: "web", Key: key})
	}
	out := scrape(t, m)
	for _, want := range []string{"stickyseat_queue_length{pool=\"web\"} 3\n", "stickyseat_queue_lapsed_total{pool=\"web\"} 0\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(out, `stickyseat_queue_length{pool="api"}`) {
		t.Errorf("scrape has a line for pool api, which refuses when full")
	}
	c.Advance(time.Minute) // every place lapses
	out = scrape(t, m)
	for _, want := range []string{"stickyseat_queue_length{pool=\"web\"} 0\n", "stickyseat_queue_lapsed_total{pool=\"web\"} 3\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("after the places lapsed, scrape lacks %q", want)
		}
	}
}

// TestQueueWaitHistogram: a user seated from the line adds the time they waited; others add
// nothing.
func TestQueueWaitHistogram(t *testing.T) {
	m := New(Sources{Version: "test"})
	m.ObserveDecision(assign.Decision{Pool: "web", Status: assign.StatusNew, Server: "s1", Waited: 20 * time.Second}, time.Millisecond)
	m.ObserveDecision(assign.Decision{Pool: "web", Status: assign.StatusNew, Server: "s1"}, time.Millisecond)
	m.ObserveDecision(assign.Decision{Pool: "web", Status: assign.StatusQueued, Position: 1}, time.Millisecond)
	out := scrape(t, m)
	for _, want := range []string{
		`stickyseat_queue_wait_seconds_count{pool="web"} 1` + "\n",
		`stickyseat_queue_wait_seconds_bucket{pool="web",le="15"} 0` + "\n",
		`stickyseat_queue_wait_seconds_bucket{pool="web",le="30"} 1` + "\n",
		`stickyseat_decisions_total{pool="web",status="queued"} 1` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}
