package assign

import (
	"errors"
	"fmt"
	"time"
)

// State is a server's administrative state.
type State uint8

// Server states.
const (
	// StateUp takes new users and keeps seated ones.
	StateUp State = iota
	// StateDrain keeps seated users and takes no new ones.
	StateDrain
	// StateDown neither keeps nor takes users: its users are moved on their next request.
	StateDown
)

// String returns the state's config name.
func (s State) String() string {
	switch s {
	case StateUp:
		return "up"
	case StateDrain:
		return "drain"
	case StateDown:
		return "down"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ParseState reads a state's config name.
func ParseState(s string) (State, error) {
	switch s {
	case "up", "":
		return StateUp, nil
	case "drain":
		return StateDrain, nil
	case "down":
		return StateDown, nil
	}
	return 0, fmt.Errorf("unknown server state %q (want up, drain or down)", s)
}

// Server is one HAProxy server of a pool.
type Server struct {
	// Name is the server's name in the HAProxy backend.
	Name string
	// Quota is the most distinct users the server holds at once.
	Quota int
	// State says whether it takes and keeps users.
	State State
}

// DownPolicy says what happens to the users of a server HAProxy reports down.
type DownPolicy uint8

// Down policies.
const (
	// DownMove moves a down server's users to another server on their next request once the
	// server has been down for the pool's DownGrace.
	DownMove DownPolicy = iota
	// DownKeep keeps their seats: they wait (HAProxy refuses them) until the server is back
	// or the seat expires.
	DownKeep
)

// String returns the policy's config name.
func (p DownPolicy) String() string {
	if p == DownKeep {
		return "keep"
	}
	return "move"
}

// ParseDownPolicy reads a policy's config name ("" is move).
func ParseDownPolicy(s string) (DownPolicy, error) {
	switch s {
	case "move", "":
		return DownMove, nil
	case "keep":
		return DownKeep, nil
	}
	return 0, fmt.Errorf("unknown down policy %q (want move or keep)", s)
}

// DefaultDownGrace is how long a server may be down before its users are moved.
const DefaultDownGrace = 10 * time.Second

// WhenFull says what a user gets when no seat is free for them.
type WhenFull uint8

// What to do when full.
const (
	// WhenFullReject answers full: HAProxy refuses the user, who may retry.
	WhenFullReject WhenFull = iota
	// WhenFullQueue puts the user in the pool's line (first come, first served) and
	// answers queued with their place; their retries keep it.
	WhenFullQueue
)

// String returns the config name.
func (w WhenFull) String() string {
	if w == WhenFullQueue {
		return "queue"
	}
	return "reject"
}

// ParseWhenFull reads a config name ("" is reject).
func ParseWhenFull(s string) (WhenFull, error) {
	switch s {
	case "reject", "":
		return WhenFullReject, nil
	case "queue":
		return WhenFullQueue, nil
	}
	return 0, fmt.Errorf("unknown when-full %q (want reject or queue)", s)
}

// Defaults of a pool's line; configuration layers fill them in.
const (
	// DefaultQueueTimeout is how long a queued user keeps their place without asking again.
	DefaultQueueTimeout = 30 * time.Second
	// DefaultQueueMax is the most places in one pool's line.
	DefaultQueueMax = 100_000
)

// Pool is one HAProxy backend whose servers share users under quotas.
type Pool struct {
	Name string
	// Servers in configured order: ties between equally used servers go to the earlier one.
	Servers []Server
	// IdleTimeout is how long a seat lives after the user's last request.
	IdleTimeout time.Duration
	// DownGrace is how long a server HAProxy reports down keeps its users (it takes no new
	// ones) before DownPolicy applies, so a blip loses no one. Zero applies the policy at
	// once; configuration layers default to DefaultDownGrace.
	DownGrace time.Duration
	// DownPolicy applies once the grace has passed.
	DownPolicy DownPolicy
	// WhenFull says whether a user who finds no free seat is refused or waits in line.
	WhenFull WhenFull
	// QueueTimeout is how long a place in line is kept without a request (WhenFullQueue).
	QueueTimeout time.Duration
	// QueueMax is the most places in the line; newcomers past it are answered full.
	QueueMax int
}

// Config is the whole policy the agent applies.
type Config struct {
	Pools []Pool
	// MaxSeats bounds the seats one pool may hold: the quotas of its servers may not add up
	// to more, so no pool can grow past it whatever its users do (memory stays bounded).
	// Zero means no bound.
	MaxSeats int
}

// Clone returns a deep copy of c: every field, the pools' server lists copied, so a run-time
// change made to the copy never reaches a configuration already in force.
func (c Config) Clone() Config {
	out := c
	if c.Pools != nil {
		out.Pools = make([]Pool, len(c.Pools))
		for i, p := range c.Pools {
			out.Pools[i] = p.Clone()
		}
	}
	return out
}

// Clone returns a deep copy of p.
func (p Pool) Clone() Pool {
	if p.Servers != nil {
		p.Servers = append([]Server(nil), p.Servers...)
	}
	return p
}

// Validate reports the first problem that would make decisions meaningless. It is the one
// check every configuration passes, whatever its source (flags, a file, a run-time change).
// A problem in a pool or server is a *ConfigError, so a loader can say where it was written.
func (c Config) Validate() error {
	if len(c.Pools) == 0 {
		return errors.New("no pools configured")
	}
	first := make(map[string]int, len(c.Pools))
	for i, p := range c.Pools {
		bad := func(field string, format string, args ...any) *ConfigError {
			return &ConfigError{Pool: i, Server: -1, Field: field, First: -1, Err: fmt.Errorf(format, args...)}
		}
		if p.Name == "" {
			return bad("Name", "pool with an empty name")
		}
		if err := ValidName(p.Name); err != nil {
			return bad("Name", "pool name %q: %w", p.Name, err)
		}
		if j, dup := first[p.Name]; dup {
			e := bad("Name", "duplicate pool %q", p.Name)
			e.First = j
			return e
		}
		first[p.Name] = i
		if err := p.validate(i); err != nil {
			return err
		}
		if total := p.Seats(); c.MaxSeats > 0 && total > c.MaxSeats {
			return bad("", "pool %q: quotas add up to %d seats, above the limit of %d seats per pool (raise --max-seats)", p.Name, total, c.MaxSeats)
		}
	}
	return nil
}

// ConfigError is a problem Validate found in one pool or one of its servers. Its indexes let
// a loader point at where that pool or server was written, such as a line of a file.
type ConfigError struct {
	// Pool indexes Config.Pools.
	Pool int
	// Server indexes the pool's Servers; -1 when the problem is the pool's.
	Server int
	// Field names the field at fault (Name, Quota, IdleTimeout, ...); empty when it is the
	// pool or server as a whole.
	Field string
	// First indexes the first pool (or server of the pool) of the same name when the problem
	// is a name given twice; -1 otherwise.
	First int
	// Err says what is wrong, naming the pool (and server).
	Err error
}

func (e *ConfigError) Error() string { return e.Err.Error() }

func (e *ConfigError) Unwrap() error { return e.Err }

// validate checks the pool at index i of its Config.
func (p Pool) validate(i int) error {
	bad := func(server int, field string, format string, args ...any) *ConfigError {
		return &ConfigError{Pool: i, Server: server, Field: field, First: -1, Err: fmt.Errorf(format, args...)}
	}
	if len(p.Servers) == 0 {
		return bad(-1, "Servers", "pool %q has no servers", p.Name)
	}
	if p.IdleTimeout <= 0 {
		return bad(-1, "IdleTimeout", "pool %q: idle timeout must be positive, got %s", p.Name, p.IdleTimeout)
	}
	if p.DownGrace < 0 {
		return bad(-1, "DownGrace", "pool %q: down grace must not be negative, got %s", p.Name, p.DownGrace)
	}
	if p.DownPolicy > DownKeep {
		return bad(-1, "DownPolicy", "pool %q: unknown down policy %d", p.Name, p.DownPolicy)
	}
	switch {
	case p.WhenFull > WhenFullQueue:
		return bad(-1, "WhenFull", "pool %q: unknown when-full %d", p.Name, p.WhenFull)
	case p.WhenFull == WhenFullQueue && p.QueueTimeout <= 0:
		return bad(-1, "QueueTimeout", "pool %q: queue timeout must be positive, got %s", p.Name, p.QueueTimeout)
	case p.WhenFull == WhenFullQueue && p.QueueMax <= 0:
		return bad(-1, "QueueMax", "pool %q: queue max must be positive, got %d", p.Name, p.QueueMax)
	}
	first := make(map[string]int, len(p.Servers))
	for j, s := range p.Servers {
		if s.Name == "" {
			return bad(j, "Name", "pool %q: server with an empty name", p.Name)
		}
		if err := ValidName(s.Name); err != nil {
			return bad(j, "Name", "pool %q: server name %q: %w", p.Name, s.Name, err)
		}
		if k, dup := first[s.Name]; dup {
			e := bad(j, "Name", "pool %q: duplicate server %q", p.Name, s.Name)
			e.First = k
			return e
		}
		first[s.Name] = j
		if s.Quota <= 0 {
			return bad(j, "Quota", "pool %q: server %q: quota must be positive, got %d", p.Name, s.Name, s.Quota)
		}
		if s.State > StateDown {
			return bad(j, "State", "pool %q: server %q: unknown state %d", p.Name, s.Name, s.State)
		}
	}
	return nil
}

// Seats is the sum of the pool's quotas: the most seats it can hold at once.
func (p Pool) Seats() int {
	total := 0
	for _, s := range p.Servers {
		total += s.Quota
	}
	return total
}

// ValidName reports whether name may name a pool or a server: letters, digits, '_', '-' and
// '.'. Names are written into haproxy.cfg (proxy and server names), inside str(...) and
// variable values of the SPOE file, and into run-time change fields ("pool/server"); these
// characters are safe in all of them.
func ValidName(name string) error {
	if name == "" {
		return errors.New("must not be empty")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return fmt.Errorf("character %q not allowed: use letters, digits, '_', '-' and '.'", r)
		}
	}
	return nil
}
