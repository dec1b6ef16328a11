// Package assign is the seat policy: pools, servers, quotas, idle timeout, the candidates a
// store may seat a user on, and the status HAProxy sees.
package assign

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/stickyseat/stickyseat/store"
)

// MaxKeyLen is the longest user key stored as it is. Longer keys are replaced by
// "sha256:" and the hex SHA-256 of the key, so a store never holds more than this per key.
const MaxKeyLen = 256

// Request is one user arriving in one pool.
type Request struct {
	// Pool names the pool; empty picks the only pool when exactly one is configured.
	Pool string
	// Key identifies the user; empty is invalid.
	Key string
	// Health is true when the request carries HAProxy's view of its servers: then every
	// server not in Down is up in HAProxy's eyes.
	Health bool
	// Down lists the servers HAProxy reports DOWN or in maintenance.
	Down []ServerRef
}

// ServerRef names one server of one pool.
type ServerRef struct {
	Pool, Server string
}

// Decision is what the agent answers HAProxy.
type Decision struct {
	Status Status
	// Pool is the pool decided in; empty when the request named none that exists.
	Pool string
	// Server is set when the user holds a seat (hit, new, moved).
	Server string
	// Previous is the server a moved user left.
	Previous string
	// Err says why the status is invalid or error.
	Err error
	// Position is the user's place in the pool's line (StatusQueued; 1 is next).
	Position int
	// Wait estimates the time until a queued user is seated; zero when unknown.
	Wait time.Duration
	// Waited is how long a user seated from the line waited in it; zero otherwise.
	Waited time.Duration
}

// Errors behind StatusInvalid, for callers that count reasons.
var (
	ErrNoKey       = errors.New("no user key")
	ErrUnknownPool = errors.New("unknown pool")
	ErrNoPool      = errors.New("no pool named and several configured")
)

// Options tune an Assigner; the zero value means the defaults.
type Options struct {
	// Clock tells the time for down-grace periods; nil means time.Now.
	Clock func() time.Time
}

// Assigner applies the policy of the current configuration through a store. It is safe
// for concurrent use; Reload swaps the configuration atomically.
type Assigner struct {
	store  store.Assigner
	cfg    atomic.Pointer[compiled]
	health health
}

// compiled is a Config turned into what each decision needs, built once per (re)load so the
// per-message path only looks things up.
type compiled struct {
	pools map[string]*compiledPool
	only  *compiledPool
}

type compiledPool struct {
	name    string
	req     store.Request  // Pool, Servers and Idle filled; Key per call
	servers []Server       // as configured, for the health view
	touch   []store.Server // req.Servers, none accepting: refresh without granting
	grace   time.Duration
	policy  DownPolicy
}

// New returns an Assigner for a validated configuration. An error from st means no decision
// was made: the user is answered StatusError and HAProxy rejects the stream.
func New(cfg Config, st store.Assigner, opts Options) (*Assigner, error) {
	if st == nil {
		return nil, errors.New("assign: nil store")
	}
	a := &Assigner{store: st}
	a.health.now = opts.Clock
	if a.health.now == nil {
		a.health.now = time.Now
	}
	if err := a.Reload(cfg); err != nil {
		return nil, err
	}
	return a, nil
}

// Reload validates cfg and makes it the configuration of every later decision. On error
// the previous configuration stays.
func (a *Assigner) Reload(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	c := &compiled{pools: make(map[string]*compiledPool, len(cfg.Pools))}
	for _, p := range cfg.Pools {
		cp := &compiledPool{name: p.Name, servers: p.Servers, grace: p.DownGrace, policy: p.DownPolicy}
		cp.req = store.Request{Pool: p.Name, Idle: p.IdleTimeout}
		if p.WhenFull == WhenFullQueue {
			cp.req.Queue = store.Queue{Timeout: p.QueueTimeout, Max: p.QueueMax}
		}
		for _, s := range p.Servers {
			switch s.State {
			case StateUp:
				cp.req.Servers = append(cp.req.Servers, store.Server{Name: s.Name, Quota: s.Quota, Accepting: true})
			case StateDrain:
				cp.req.Servers = append(cp.req.Servers, store.Server{Name: s.Name, Quota: s.Quota})
			}
		}
		for _, s := range cp.req.Servers {
			s.Accepting = false
			cp.touch = append(cp.touch, s)
		}
		c.pools[p.Name] = cp
	}
	if len(cfg.Pools) == 1 {
		c.only = c.pools[cfg.Pools[0].Name]
	}
	a.cfg.Store(c)
	a.health.forgetMissing(c)
	return nil
}

// NeverBlocks reports whether Decide never waits: its store says so (memory.Store does), so
// a caller need not give Decide a deadline.
func (a *Assigner) NeverBlocks() bool { return a.store.NeverBlocks() }

// Decide seats the user of req. It never panics on bad input: a missing key or unknown pool
// is StatusInvalid, a store failure StatusError.
func (a *Assigner) Decide(ctx context.Context, req Request) Decision {
	c := a.cfg.Load()
	p := c.only
	if req.Pool != "" {
		p = c.pools[req.Pool]
		if p == nil {
			return Decision{Status: StatusInvalid, Err: fmt.Errorf("%w %q", ErrUnknownPool, req.Pool)}
		}
	} else if p == nil {
		return Decision{Status: StatusInvalid, Err: ErrNoPool}
	}
	if req.Key == "" {
		return Decision{Status: StatusInvalid, Pool: p.name, Err: ErrNoKey}
	}
	sr := p.req // copy: Servers is shared read-only
	// HAProxy reporting every server up while none is remembered down is the usual case
	// with health arguments: the configured view stands, with no lock and no copy.
	if (req.Health && len(req.Down) > 0) || a.health.tracking() {
		sr.Servers = a.health.servers(p, req)
	}
	if len(sr.Servers) == 0 {
		// Every server is down: nobody can be seated or kept.
		return Decision{Status: StatusFull, Pool: p.name}
	}
	sr.Key = NormalizeKey(req.Key)
	res, err := a.store.Assign(ctx, sr)
	if err != nil {
		return Decision{Status: StatusError, Pool: p.name, Err: fmt.Errorf("assign in pool %q: %w", p.name, err)}
	}
	d := Decision{Pool: p.name, Server: res.Server, Previous: res.Previous, Waited: res.Waited}
	switch res.Outcome {
	case store.OutcomeHit:
		d.Status = StatusHit
	case store.OutcomeNew:
		d.Status = StatusNew
	case store.OutcomeMoved:
		d.Status = StatusMoved
	case store.OutcomeFull:
		d.Status, d.Server = StatusFull, ""
	case store.OutcomeQueued:
		d.Status, d.Server, d.Position, d.Wait = StatusQueued, "", res.Position, res.Wait
	default:
		return Decision{Status: StatusError, Pool: p.name, Err: fmt.Errorf("assign in pool %q: store answered outcome %d", p.name, res.Outcome)}
	}
	if d.Status.Seated() && d.Server == "" {
		return Decision{Status: StatusError, Pool: p.name, Err: fmt.Errorf("assign in pool %q: store answered %s without a server", p.name, res.Outcome)}
	}
	return d
}

// NormalizeKey bounds a key's length: keys up to MaxKeyLen bytes are kept as they are,
// longer ones become "sha256:<hex>" (71 bytes).
func NormalizeKey(key string) string {
	if len(key) <= MaxKeyLen {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}
