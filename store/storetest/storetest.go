// Package storetest is the contract suite that every seat store implementation runs.
package storetest

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/store"
)

// Clock is a fake clock owned by the suite. It is safe for concurrent use.
type Clock struct {
	mu  sync.RWMutex
	now time.Time
}

// NewClock returns a clock stopped at start.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start}
}

// Now returns the clock's time. A store under test uses it as its only source of time.
func (c *Clock) Now() time.Time {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// start is where every subtest's clock begins; any instant works.
var start = time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC)

// idle is the idle time of every request the suite makes, unless a test says otherwise.
const idle = 10 * time.Second

// Run runs the contract suite. newStore returns a fresh store whose only source of time is
// clock.Now; it is called once per subtest and may register cleanups on t. Every subtest uses
// pool names of its own, unique across runs, so stores may share a backend.
//
// Options size the suite; the defaults suit an in-process store.
func Run(t *testing.T, newStore func(t *testing.T, clock *Clock) store.Store, opts ...Option) {
	t.Helper()
	s := &suite{
		newStore:   newStore,
		prefix:     "storetest-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		goroutines: concGoroutines, requests: concRequests, phases: concPhases,
	}
	if testing.Short() {
		s.goroutines, s.requests, s.phases = concShortGoroutines, concShortRequests, concShortPhases
	}
	for _, o := range opts {
		o(s)
	}
	t.Run("InvalidRequest", s.invalidRequest)
	t.Run("NewSeat", s.newSeat)
	t.Run("HitRefreshes", s.hitRefreshes)
	t.Run("ExpiryBoundary", s.expiryBoundary)
	t.Run("Full", s.full)
	t.Run("LeastUsedPerQuota", s.leastUsedPerQuota)
	t.Run("TiesGoToConfiguredOrder", s.tiesGoToConfiguredOrder)
	t.Run("RemovedServer", s.removedServer)
	t.Run("Draining", s.draining)
	t.Run("LoweredQuota", s.loweredQuota)
	t.Run("PoolsIndependent", s.poolsIndependent)
	t.Run("DistinctKeys", s.distinctKeys)
	t.Run("EvenDistribution", s.evenDistribution)
	t.Run("Concurrency", s.concurrency)
	t.Run("LiveCounts", s.liveCounts)
	t.Run("LiveSeats", s.liveSeats)
	t.Run("LiveSeat", s.liveSeat)
	t.Run("Evict", s.evict)
	t.Run("Overrides", s.overrides)
	t.Run("Line", s.line)
	t.Run("LineInspection", s.lineInspection)
	t.Run("LineMassLapse", s.lineMassLapse)
	t.Run("LineConcurrency", s.lineConcurrency)
}

// Option changes how the suite runs.
type Option func(*suite)

// WithConcurrency sizes the Concurrency subtest: goroutines, requests per goroutine over all
// phases, and phases. A store behind a network round trip (Redis) needs fewer requests to
// finish in reasonable time; its scale test lives beside it.
func WithConcurrency(goroutines, requests, phases int) Option {
	return func(s *suite) {
		if goroutines > 0 && requests >= phases && phases > 0 {
			s.goroutines, s.requests, s.phases = goroutines, requests, phases
		}
	}
}

// suite carries what every subtest needs.
type suite struct {
	newStore                     func(t *testing.T, clock *Clock) store.Store
	prefix                       string
	goroutines, requests, phases int
}

// env is one subtest's fresh store, its clock and its pool names.
type env struct {
	t      *testing.T
	clock  *Clock
	store  store.Store
	prefix string
}

func (s *suite) env(t *testing.T) *env {
	t.Helper()
	clock := NewClock(start)
	return &env{t: t, clock: clock, store: s.newStore(t, clock), prefix: s.prefix + "/" + t.Name()}
}

// pool returns the unique pool name for a logical name; "" is the main pool.
func (e *env) pool(name string) string {
	if name == "" {
		name = "main"
	}
	return e.prefix + "/" + name
}

// assign makes one request in a logical pool and fails the test on an error.
func (e *env) assign(pool, key string, servers []store.Server) store.Result {
	e.t.Helper()
	return e.assignQ(pool, key, servers, store.Queue{})
}

// assignQ is assign with the pool's line set to q.
func (e *env) assignQ(pool, key string, servers []store.Server, q store.Queue) store.Result {
	e.t.Helper()
	req := store.Request{Pool: e.pool(pool), Key: key, Servers: servers, Idle: idle, Queue: q}
	got, err := e.store.Assign(context.Background(), req)
	if err != nil {
		e.t.Fatalf("Assign(%q, %q, %v) error: %v", req.Pool, key, servers, err)
	}
	return got
}

// step is one request of a scripted scenario.
type step struct {
	after   time.Duration // advance the clock by this before the request
	pool    string        // logical pool; "" is the main pool
	key     string
	servers []store.Server
	queue   store.Queue // the pool's line; zero: off
	want    store.Result
}

// scenario is a named script run on a fresh store.
type scenario struct {
	name  string
	steps []step
}

// play runs each scenario as a subtest and compares every answer with the script.
func (s *suite) play(t *testing.T, scenarios []scenario) {
	t.Helper()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			e := s.env(t)
			for i, st := range sc.steps {
				e.clock.Advance(st.after)
				got := e.assignQ(st.pool, st.key, st.servers, st.queue)
				if got != st.want {
					t.Fatalf("step %d at start+%v: Assign(pool %q, key %q, %v) = %+v; want %+v",
						i, e.clock.Now().Sub(start), st.pool, st.key, st.servers, got, st.want)
				}
			}
		})
	}
}

// up is an accepting server.
func up(name string, quota int) store.Server {
	return store.Server{Name: name, Quota: quota, Accepting: true}
}

// draining is a listed server that keeps its seats and takes no new ones.
func draining(name string, quota int) store.Server {
	return store.Server{Name: name, Quota: quota}
}

// servers lists servers in configured order.
func servers(list ...store.Server) []store.Server {
	return list
}

func hit(server string) store.Result {
	return store.Result{Outcome: store.OutcomeHit, Server: server}
}

func granted(server string) store.Result {
	return store.Result{Outcome: store.OutcomeNew, Server: server}
}

func moved(server, previous string) store.Result {
	return store.Result{Outcome: store.OutcomeMoved, Server: server, Previous: previous}
}

func full() store.Result {
	return store.Result{Outcome: store.OutcomeFull}
}

func fullReleasing(previous string) store.Result {
	return store.Result{Outcome: store.OutcomeFull, Previous: previous}
}
