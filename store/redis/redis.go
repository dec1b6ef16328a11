// Package redis implements the seat store in Redis, shared by the agents of several HAProxy
// nodes, with one Lua script making each look-up-or-assign decision atomically.
//
// # Key layout
//
// Every key of a pool carries the pool as a Cluster hash tag, so one script call touches one
// slot (the prefix defaults to "stickyseat:"):
//
//	<prefix>{<pool>}:srv:<server>   sorted set: user keys scored by last refresh (µs, Redis TIME)
//	<prefix>{<pool>}:user:<key>     string: the server the user sits on
//
// A seat refreshed at t is live while now < t+idle; live seats are counted exactly with
// ZCOUNT (now-idle +inf, so there is no counter to drift. Both keys get PEXPIRE idle (+1 ms) on
// every refresh as a safety net: a user who never comes back loses the user key, and a server
// set that receives no refresh for idle (server removed from the configuration, drained pool)
// disappears once its last seat has expired. Each call also removes up to 64 expired seats from
// every server set it touches; what it leaves is never counted and is collected by later calls
// or by the set's own expiry. Redis must not evict keys (maxmemory-policy noeviction, the
// default): an evicted user key makes its user look new while the old seat still counts.
//
// # Time
//
// Seat times come from Redis TIME inside the script, so the agents' clocks do not matter; a
// step of the Redis host's wall clock shifts every seat's life by the step. The clock is that
// of the master holding the pool, so after a failover, skew between the Redis hosts shifts the
// seats' lives too. Times have microsecond resolution and idle times are rounded up to whole
// microseconds.
//
// # Failover
//
// Redis replicates asynchronously, so a failover (Sentinel or Cluster) can lose seats: those
// granted or refreshed on the old master shortly before it failed and not yet replicated, and,
// during a switch, those written to the old master after the replica was promoted but before
// the old master was demoted and the clients moved (the old master then resyncs and drops them;
// the Sentinel test sees this window). A lost seat's user looks new and may be seated on another
// server, and the server the user is still connected to no longer counts it, so a quota can be
// exceeded by the number of lost seats until they would have expired (idle). A refresh lost
// only shortens a seat's life to idle after its previous refresh. The script is reloaded
// transparently on the new master (NOSCRIPT → EVAL). While Redis fails, users in the agent's
// hit cache keep their seats (see Options.RefreshInterval); the others get errors until the
// client reaches the new master.
//
// # Batching
//
// A decision's script call goes out at once unless the pool already has two writes waiting
// for Redis; then it queues, and the calls queued meanwhile go out together as one pipeline of
// at most 64 EVALSHA (see batcher). Each caller still waits no longer than its own deadline.
package redis

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/store"
)

// Defaults of Options.
const (
	DefaultKeyPrefix       = "stickyseat:"
	DefaultTimeout         = 250 * time.Millisecond
	DefaultRefreshInterval = time.Second
	DefaultCacheSize       = 100_000
)

// errorLogInterval is the minimum time between two logged Redis errors; the ones in between
// are counted (Errors) and summarised in the next log line.
const errorLogInterval = 10 * time.Second

// openTimeout bounds Open's first PING when the caller's context has no earlier deadline.
const openTimeout = 5 * time.Second

// Options tune a Store. The zero value gives the defaults.
type Options struct {
	// KeyPrefix starts every key; default "stickyseat:". It must not contain '{' or '}' (that
	// would move the Cluster hash tag).
	KeyPrefix string

	// Timeout bounds each Assign's Redis work (including a NOSCRIPT reload and the time its
	// call waits to be batched with others); default 250ms.
	// It must be shorter than HAProxy's "timeout processing" so that the agent can still
	// answer status=error before HAProxy gives up on it.
	Timeout time.Duration

	// RefreshInterval is how long a seat seen refreshed in Redis is answered "hit" from memory,
	// without a round trip, provided its server is still listed: 0 means 1s, negative disables.
	// It is further capped at half the request's idle time, so that a continuously active
	// user is always refreshed before the seat expires.
	//
	// Effect on expiry: Redis only learns of a request when it goes through, so a seat may
	// expire in Redis up to min(RefreshInterval, idle/2) earlier than idle after the last
	// request this agent answered from memory.
	//
	// Independently of this setting, when Redis fails (outage, timeout, failover) a user whose
	// last seen refresh plus idle is still ahead keeps the seat: Assign answers "hit" with a
	// nil error (the error is still counted and logged). Everybody else gets the error.
	RefreshInterval time.Duration

	// CacheSize bounds the entries of the hit cache; 0 means 100,000, negative disables the
	// cache altogether (no hit from memory, no outage fallback).
	CacheSize int

	// Logger receives Redis errors, at most one line per 10s; the zero value logs nothing.
	Logger zerolog.Logger

	// Clock, when set, replaces Redis TIME (passed to the script) and the local clock. It is
	// for tests only: with it, keys get no TTL, and agents with different clocks would
	// disagree about every seat.
	Clock func() time.Time
}

// Store is the Redis seat store. It is safe for concurrent use.
type Store struct {
	client  goredis.UniversalClient
	owned   bool // Close closes the client: Open created it
	prefix  string
	timeout time.Duration
	refresh time.Duration // <= 0: no hit from memory
	cache   *hitCache     // nil: disabled
	clock   func() time.Time
	log     zerolog.Logger

	batch batchers

	errors     atomic.Uint64
	roundTrips atomic.Uint64
	pipelines  atomic.Uint64
	cacheHits  atomic.Uint64

	logMu      sync.Mutex
	lastLog    time.Time
	suppressed uint64
}

// New returns a store using client, which the caller keeps and closes. The client must honour
// context deadlines (go-redis ContextTimeoutEnabled, as ParseURL sets), or each call may wait
// for the client's own read timeout instead of Options.Timeout.
func New(client goredis.UniversalClient, opts Options) *Store {
	s := &Store{
		client:  client,
		prefix:  opts.KeyPrefix,
		timeout: opts.Timeout,
		refresh: opts.RefreshInterval,
		clock:   opts.Clock,
		log:     opts.Logger.With().Str("component", "redis-store").Logger(),
	}
	if s.prefix == "" {
		s.prefix = DefaultKeyPrefix
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.refresh == 0 {
		s.refresh = DefaultRefreshInterval
	}
	switch {
	case opts.CacheSize == 0:
		s.cache = newHitCache(DefaultCacheSize, s.now())
	case opts.CacheSize > 0:
		s.cache = newHitCache(opts.CacheSize, s.now())
	}
	s.batch.s = s
	s.batch.shared = &batcher{s: s}
	return s
}

// Open connects to the Redis described by rawURL (see ParseURL), checks it answers a PING and
// returns a store that owns the client.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	uo, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	client := goredis.NewUniversalClient(uo)
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		closeErr := client.Close()
		return nil, fmt.Errorf("redis ping %s: %w", strings.Join(uo.Addrs, ","), joinErr(err, closeErr))
	}
	s := New(client, opts)
	s.owned = true
	return s, nil
}

// Close waits until the Redis calls already made, batched ones included, have their answers
// (each within its own deadline), and releases the client if Open created it. Assign calls
// after Close get an error, answered from the cache like any Redis failure.
func (s *Store) Close() error {
	s.batch.close()
	if !s.owned {
		return nil
	}
	if err := s.client.Close(); err != nil {
		return fmt.Errorf("redis close: %w", err)
	}
	return nil
}

// Assign looks up or assigns the user's seat (see store.Request for the semantics both stores share). Errors are
// store.ErrInvalidRequest (wrapped) or Redis failures; on a Redis failure a user whose cached
// seat is still live gets it back with a nil error. Assign returns by ctx's deadline or after
// Options.Timeout, whichever comes first; a cancellation of ctx is noticed when it starts
// (see decideWithin).
func (s *Store) Assign(ctx context.Context, req store.Request) (store.Result, error) {
	if err := req.Validate(); err != nil {
		return store.Result{}, fmt.Errorf("redis assign in pool %q: %w", req.Pool, err)
	}
	start := s.now()
	var cached cacheEntry
	var haveCached bool
	if s.cache != nil {
		cached, haveCached = s.cache.get(req.Pool, req.Key, start)
		haveCached = haveCached && req.Lists(cached.server)
		if haveCached && s.refresh > 0 && start.Sub(cached.refreshed) < min(s.refresh, min(cached.idle, req.Idle)/2) {
			s.cacheHits.Add(1)
			return store.Result{Outcome: store.OutcomeHit, Server: cached.server}, nil
		}
	}

	res, err := s.decideWithin(ctx, req)
	if err != nil {
		s.errors.Add(1)
		err = fmt.Errorf("redis assign in pool %q: %w", req.Pool, err)
		s.logError(err)
		if haveCached && s.now().Before(cached.refreshed.Add(min(cached.idle, req.Idle))) {
			return store.Result{Outcome: store.OutcomeHit, Server: cached.server}, nil
		}
		return store.Result{}, err
	}
	if s.cache != nil {
		if res.Server != "" {
			s.cache.put(req.Pool, req.Key, res.Server, start, req.Idle)
		} else {
			s.cache.remove(req.Pool, req.Key)
		}
	}
	return res, nil
}

// decideWithin runs decide until ctx's deadline or the store's timeout, whichever comes first.
// No context derived from ctx can be canceled by it: deriving one registers with ctx and makes
// the agent's decision context start its own timer, which cost the agent more than the rest
// of the store's context handling together (profile of serve under stickyseat bench). So a
// cancellation of ctx is noticed when the call starts; after that the call ends by its
// deadline at the latest (before batching, go-redis only looked at ctx before each command).
func (s *Store) decideWithin(ctx context.Context, req store.Request) (store.Result, error) {
	if err := ctx.Err(); err != nil {
		return store.Result{}, err
	}
	deadline := time.Now().Add(s.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return s.decide(ctx, deadline, req)
}

var (
	_ store.Store = (*Store)(nil)
	_ store.Stats = (*Store)(nil)
)

// NeverBlocks is false: every decision may wait on Redis, so it needs a deadline.
func (s *Store) NeverBlocks() bool { return false }

// Errors returns how many Assign calls Redis failed (including those answered from the cache).
func (s *Store) Errors() uint64 { return s.errors.Load() }

// RoundTrips returns how many script commands were sent to Redis (EVALSHA, EVAL after
// NOSCRIPT, and the second call when a seat on an unlisted server has to be released), whether
// alone or pipelined with others: one per command, not per network round trip (Pipelines).
func (s *Store) RoundTrips() uint64 { return s.roundTrips.Load() }

// Pipelines returns how many times the store sent script commands to Redis and waited for
// their replies: a command sent alone counts one, and so does a pipeline of the commands
// batched while Redis was busy (see batcher; a Cluster client splits it by node), so
// RoundTrips/Pipelines is the mean batch size.
func (s *Store) Pipelines() uint64 { return s.pipelines.Load() }

// CacheHits returns how many Assign calls were answered from memory without Redis.
func (s *Store) CacheHits() uint64 { return s.cacheHits.Load() }

func (s *Store) now() time.Time {
	if s.clock != nil {
		return s.clock()
	}
	return time.Now()
}

// logError logs the first error and then at most one per errorLogInterval, with the number of
// errors it kept quiet about: during an outage every request fails and per-request lines would
// bury everything else.
func (s *Store) logError(err error) {
	s.logMu.Lock()
	now := time.Now()
	if !s.lastLog.IsZero() && now.Sub(s.lastLog) < errorLogInterval {
		s.suppressed++
		s.logMu.Unlock()
		return
	}
	suppressed := s.suppressed
	s.lastLog, s.suppressed = now, 0
	s.logMu.Unlock()
	s.log.Error().Err(err).Uint64("suppressed", suppressed).Msg("redis store failed")
}

func joinErr(err, closeErr error) error {
	if closeErr == nil {
		return err
	}
	return fmt.Errorf("%w (closing client: %w)", err, closeErr)
}
