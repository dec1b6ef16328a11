// Package memory is the embedded seat store: every pool lives in this process, behind one mutex.
package memory

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/stickyseat/stickyseat/store"
)

// DefaultSweepInterval is how often Run reclaims expired seats when Options.SweepInterval is zero.
const DefaultSweepInterval = time.Second

// Options tunes a Store. The zero value is ready to use.
type Options struct {
	// Clock tells the time; nil means time.Now. Tests inject a fake clock to make expiry exact.
	Clock func() time.Time
	// SweepInterval is how often Run reclaims expired seats; zero or negative means
	// DefaultSweepInterval.
	SweepInterval time.Duration
}

// Store keeps the seats of every pool in memory. It is safe for concurrent use. Pools are
// created on first use and never removed: their number is bounded by the configuration.
type Store struct {
	clock    func() time.Time
	epoch    time.Time
	interval time.Duration

	mu    sync.RWMutex
	pools map[string]*pool

	// overridesMu guards overrides, the operators' run-time changes (see Overrides).
	overridesMu sync.Mutex
	overrides   map[string]string

	// saveMu serializes SaveFile, so that an older save never renames over a newer one.
	saveMu sync.Mutex
}

var _ store.Store = (*Store)(nil)

// New returns an empty store.
func New(opts Options) *Store {
	s := &Store{
		clock:    opts.Clock,
		interval: opts.SweepInterval,
		pools:    make(map[string]*pool),
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.interval <= 0 {
		s.interval = DefaultSweepInterval
	}
	s.epoch = s.clock()
	return s
}

// Assign looks up or grants the seat of req.Key in req.Pool, atomically for that pool, with the
// semantics of store.Request and store.Outcome. It returns an error wrapping
// store.ErrInvalidRequest for an invalid request, and the context's error when ctx is done.
func (s *Store) Assign(ctx context.Context, req store.Request) (store.Result, error) {
	if err := req.Validate(); err != nil {
		return store.Result{}, fmt.Errorf("memory assign in pool %q: %w", req.Pool, err)
	}
	if err := ctx.Err(); err != nil {
		return store.Result{}, fmt.Errorf("memory assign in pool %q: %w", req.Pool, err)
	}
	p := s.pool(req.Pool)
	p.mu.Lock()
	defer p.mu.Unlock()
	// The clock is read under the lock so that, with a monotonic clock, seats enter the
	// pool's list in last-seen order.
	return p.assign(req, s.now()), nil
}

// NeverBlocks reports that Assign never waits: it decides under a mutex held for a bounded
// time and asks ctx only whether it is already done. Callers may skip setting a deadline.
func (s *Store) NeverBlocks() bool { return true }

// Sweep reclaims the expired seats of every pool. Assign reclaims its own pool's expired seats
// before deciding, so Sweep only bounds memory held by pools that see no traffic.
func (s *Store) Sweep() {
	s.mu.RLock()
	pools := make([]*pool, 0, len(s.pools))
	for _, p := range s.pools {
		pools = append(pools, p)
	}
	s.mu.RUnlock()
	for _, p := range pools {
		p.mu.Lock()
		p.expire(s.now())
		p.mu.Unlock()
	}
}

// Run calls Sweep every SweepInterval until ctx is done.
func (s *Store) Run(ctx context.Context) {
	ticker := time.NewTicker(s.interval)
	defer ticker.Stop()
	s.run(ctx, ticker.C)
}

// run sweeps on every tick; tests drive it with their own channel.
func (s *Store) run(ctx context.Context, tick <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			s.Sweep()
		}
	}
}

// Usage returns the number of live seats held on each server of the pool, including servers
// the pool no longer lists. Servers holding no seat are absent. The map is the caller's.
func (s *Store) Usage(pool string) map[string]int {
	usage := make(map[string]int)
	p := s.lookup(pool)
	if p == nil {
		return usage
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expire(s.now())
	for i, n := range p.used {
		if n > 0 {
			usage[p.names[i]] = n
		}
	}
	return usage
}

// Seats returns the number of live seats in the pool.
func (s *Store) Seats(pool string) int {
	p := s.lookup(pool)
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expire(s.now())
	return p.count
}

// now returns the time as nanoseconds since the store was created. Subtracting from the epoch
// uses the monotonic clock when time.Now is the clock, so wall clock steps do not move seats.
func (s *Store) now() int64 {
	return int64(s.clock().Sub(s.epoch))
}

// lookup returns the named pool, or nil when it was never used.
func (s *Store) lookup(name string) *pool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.pools[name]
}

// pool returns the named pool, creating it on first use.
func (s *Store) pool(name string) *pool {
	if p := s.lookup(name); p != nil {
		return p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.pools[name]; ok {
		return p
	}
	p := newPool()
	// The pool outlives the request: do not keep the caller's string alive.
	s.pools[strings.Clone(name)] = p
	return p
}
