// Package metrics exposes stickyseat's Prometheus metrics: decisions by status and their
// latency, seats used and quota per server, server state, store errors and round trips,
// SPOP connections and frames, build info.
package metrics

import (
	"context"
	"maps"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stickyseat/stickyseat/admin"
	"github.com/stickyseat/stickyseat/agent"
	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/store"
)

// Sources are what the metrics read at scrape time.
type Sources struct {
	Version string
	// Agent returns the agent's counters.
	Agent func() agent.Stats
	// Pools returns the pools with their servers' seats (admin.Admin.Pools).
	Pools func(ctx context.Context, limit int) ([]admin.PoolView, error)
	// Store, when set, adds the store's error and round-trip counters.
	Store store.Stats
	// DecisionTimeout is the agent's decision deadline: the latency histogram's buckets
	// reach past it, so decisions cut by it are told apart from slow ones that made it.
	// Zero means the agent's default, 500ms.
	DecisionTimeout time.Duration
}

// UnknownPool labels decisions made in no pool: the message named none that exists (or
// none, with several pools). A pool name the configuration does not have is never a label,
// so messages cannot create series without bound. The parentheses make it a name no pool
// can have (assign.ValidName refuses them), so it never mixes with a real pool's series.
const UnknownPool = "(unknown)"

// latencyBuckets are the decision-latency histogram's bounds: fine steps from 10µs (a
// memory decision) to 250ms, then doubling past timeout, with timeout itself a bound.
func latencyBuckets(timeout time.Duration) []float64 {
	if timeout <= 0 {
		timeout = 500 * time.Millisecond
	}
	b := []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25}
	top := timeout.Seconds()
	for b[len(b)-1] > top { // a timeout under 250ms: drop the bounds past it
		b = b[:len(b)-1]
	}
	for next := b[len(b)-1] * 2; next < top; next *= 2 {
		b = append(b, next)
	}
	if b[len(b)-1] < top {
		b = append(b, top)
	}
	// One bound past the timeout: a decision cut at the deadline answers a little after it.
	return append(b, 2*top)
}

// Metrics holds a registry of its own (no global state).
type Metrics struct {
	reg       *prometheus.Registry
	decisions *prometheus.CounterVec
	latency   prometheus.Histogram

	// counters caches decisions' children per status, then pool: WithLabelValues hashes
	// both labels and takes a lock on every call, once per decision. Maps are replaced,
	// never changed, so reads take no lock; a pool is added on its first decision.
	counters [int(assign.StatusQueued) + 1]atomic.Pointer[map[string]prometheus.Counter]

	// waited is the time users seated from a line waited in it, by pool.
	waited *prometheus.HistogramVec
	addMu  sync.Mutex
}

// New registers every metric.
func New(src Sources) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stickyseat_decisions_total", Help: "Answers to HAProxy by pool and status (hit, new, moved, full, invalid, error, queued); pool \"" + UnknownPool + "\" when the message named no pool that exists.",
		}, []string{"pool", "status"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "stickyseat_decision_duration_seconds",
			Help:    "Time from a message's decoding to its answer, store included.",
			Buckets: latencyBuckets(src.DecisionTimeout),
		}),
	}
	m.waited = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "stickyseat_queue_wait_seconds",
		Help:    "Time a user seated from the pool's line waited in it, from joining to the seat.",
		Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600},
	}, []string{"pool"})
	m.reg.MustRegister(m.decisions, m.latency, m.waited, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "stickyseat_build_info", Help: "Always 1; the labels say which build runs.",
		ConstLabels: prometheus.Labels{"version": src.Version, "go_version": runtime.Version()}})
	build.Set(1)
	m.reg.MustRegister(build)
	if src.Agent != nil {
		counter := func(name, help string, f func(agent.Stats) uint64) {
			m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f(src.Agent())) }))
		}
		counter("stickyseat_spop_connections_total", "SPOP connections accepted.", func(s agent.Stats) uint64 { return s.Connections })
		counter("stickyseat_spop_frames_total", "NOTIFY frames answered.", func(s agent.Stats) uint64 { return s.Frames })
		counter("stickyseat_spop_bad_frames_total", "Connections closed by the frame guard.", func(s agent.Stats) uint64 { return s.BadFrames })
		counter("stickyseat_spop_refused_connections_total", "Connections refused beyond --max-connections, every connection held being busy.", func(s agent.Stats) uint64 { return s.RefusedConnections })
		counter("stickyseat_spop_accept_errors_total", "Accepts of SPOP connections that failed and were retried (out of file descriptors).", func(s agent.Stats) uint64 { return s.AcceptErrors })
		counter("stickyseat_spop_evicted_connections_total", "Idle connections closed beyond --max-connections to let a new one in.", func(s agent.Stats) uint64 { return s.EvictedConnections })
		counter("stickyseat_spop_hello_timeouts_total", "Connections closed for not sending their HELLO within --hello-timeout.", func(s agent.Stats) uint64 { return s.HelloTimeouts })
		counter("stickyseat_panics_total", "Panics recovered (handler or decoder).", func(s agent.Stats) uint64 { return s.Panics })
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stickyseat_spop_connections", Help: "SPOP connections open now."},
			func() float64 { return float64(src.Agent().Open) }))
	}
	if src.Store != nil {
		st := src.Store
		m.reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "stickyseat_store_errors_total", Help: "Store calls that failed."}, func() float64 { return float64(st.Errors()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "stickyseat_store_round_trips_total", Help: "Script commands sent to Redis (concurrent ones share a pipeline: one write, one read)."}, func() float64 { return float64(st.RoundTrips()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "stickyseat_store_pipelines_total", Help: "Writes of script commands to Redis, each answered before the next: round trips / pipelines is the mean batch size."}, func() float64 { return float64(st.Pipelines()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "stickyseat_cache_hits_total", Help: "Decisions answered from the local hit cache, without Redis."}, func() float64 { return float64(st.CacheHits()) }),
		)
	}
	if src.Pools != nil {
		m.reg.MustRegister(&seatsCollector{pools: src.Pools})
	}
	return m
}

// ObserveDecision counts one answer; agent.Options.OnDecision. An empty pool is counted
// as UnknownPool.
func (m *Metrics) ObserveDecision(d assign.Decision, took time.Duration) {
	pool := d.Pool
	if pool == "" {
		pool = UnknownPool
	}
	m.counter(pool, d.Status).Inc()
	m.latency.Observe(took.Seconds())
	if d.Waited > 0 {
		m.waited.WithLabelValues(pool).Observe(d.Waited.Seconds())
	}
}

// counter returns the decisions counter of pool and status.
func (m *Metrics) counter(pool string, status assign.Status) prometheus.Counter {
	if int(status) >= len(m.counters) {
		return m.decisions.WithLabelValues(pool, status.String())
	}
	slot := &m.counters[status]
	if byPool := slot.Load(); byPool != nil {
		if c, ok := (*byPool)[pool]; ok {
			return c
		}
	}
	m.addMu.Lock()
	defer m.addMu.Unlock()
	old := slot.Load()
	if old != nil {
		if c, ok := (*old)[pool]; ok {
			return c
		}
	}
	byPool := make(map[string]prometheus.Counter, 1)
	if old != nil {
		byPool = maps.Clone(*old)
	}
	// The map outlives the decision: do not keep the caller's string alive.
	pool = strings.Clone(pool)
	c := m.decisions.WithLabelValues(pool, status.String())
	byPool[pool] = c
	slot.Store(&byPool)
	return c
}

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// seatsCollector reads seats at scrape time: they live in the store, not in counters.
type seatsCollector struct {
	pools func(ctx context.Context, limit int) ([]admin.PoolView, error)
}

var (
	usedDesc  = prometheus.NewDesc("stickyseat_seats_used", "Live seats (distinct users) on a server.", []string{"pool", "server"}, nil)
	quotaDesc = prometheus.NewDesc("stickyseat_seats_quota", "A server's quota in force.", []string{"pool", "server"}, nil)
	stateDesc = prometheus.NewDesc("stickyseat_server_state", "1 for the state this agent's decisions apply to the server (up, drain, down-in-grace, down): the configured state under HAProxy's health reports and the down grace.", []string{"pool", "server", "state"}, nil)
	upDesc    = prometheus.NewDesc("stickyseat_seats_scrape_ok", "1 when the seats could be read from the store.", nil, nil)
	lineDesc  = prometheus.NewDesc("stickyseat_queue_length", "Users waiting in the pool's line (pools with when-full: queue).", []string{"pool"}, nil)
	lapseDesc = prometheus.NewDesc("stickyseat_queue_lapsed_total", "Places in the pool's line that lapsed because their user stopped asking (counted by the store, shared by every agent on it).", []string{"pool"}, nil)
)

func (c *seatsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- usedDesc
	ch <- quotaDesc
	ch <- stateDesc
	ch <- upDesc
	ch <- lineDesc
	ch <- lapseDesc
}

func (c *seatsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	pools, err := c.pools(ctx, 0)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 1)
	for _, p := range pools {
		if p.Line != nil {
			ch <- prometheus.MustNewConstMetric(lineDesc, prometheus.GaugeValue, float64(p.Line.Length), p.Name)
			ch <- prometheus.MustNewConstMetric(lapseDesc, prometheus.CounterValue, float64(p.Line.Lapsed), p.Name)
		}
		for _, s := range p.Servers {
			ch <- prometheus.MustNewConstMetric(usedDesc, prometheus.GaugeValue, float64(s.Used), p.Name, s.Name)
			ch <- prometheus.MustNewConstMetric(quotaDesc, prometheus.GaugeValue, float64(s.Quota), p.Name, s.Name)
			for st := assign.EffectiveUp; st <= assign.EffectiveDown; st++ {
				v := 0.0
				if st.String() == s.State {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, v, p.Name, s.Name, st.String())
			}
		}
	}
}
