package assign

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stickyseat/stickyseat/store"
)

// EffectiveState is a server's state as this agent's decisions see it: the configured (or
// operator-set) state under the health HAProxy last reported to this agent and the pool's
// down grace.
type EffectiveState uint8

// Effective states.
const (
	// EffectiveUp takes new users and keeps its own.
	EffectiveUp EffectiveState = iota
	// EffectiveDrain keeps its users and takes no new ones.
	EffectiveDrain
	// EffectiveDownInGrace is reported down by HAProxy for less than the pool's down grace:
	// it takes no new users and its users keep their seats (HAProxy refuses them meanwhile).
	EffectiveDownInGrace
	// EffectiveDown is down by configuration, or reported down by HAProxy for at least the
	// grace: it takes no new users and its users move (DownMove) or wait for it (DownKeep).
	EffectiveDown
)

// String returns the state's name: up, drain, down-in-grace or down.
func (s EffectiveState) String() string {
	switch s {
	case EffectiveUp:
		return "up"
	case EffectiveDrain:
		return "drain"
	case EffectiveDownInGrace:
		return "down-in-grace"
	case EffectiveDown:
		return "down"
	}
	return fmt.Sprintf("effective(%d)", uint8(s))
}

// ServerStates returns the effective state of every server of pool, by name, as a decision
// made now would see them; nil for an unknown pool. It is this agent's view: each HAProxy
// node reports its servers' health to its own agents only, with its requests, so a server
// that changed since HAProxy's last request here shows its last reported health.
func (a *Assigner) ServerStates(pool string) map[string]EffectiveState {
	p := a.cfg.Load().pools[pool]
	if p == nil {
		return nil
	}
	return a.health.states(p)
}

// health remembers since when HAProxy has reported each server down, per agent (each
// HAProxy node has its own view and its own agent), surviving configuration reloads.
type health struct {
	now   func() time.Time
	mu    sync.Mutex
	since map[ServerRef]time.Time
	count atomic.Int64 // len(since), read without the lock on the per-message path
}

// tracking reports whether some server is currently remembered down.
func (h *health) tracking() bool { return h.count.Load() > 0 }

// servers returns the store's view of the pool under HAProxy's health report: a server down
// for less than the grace keeps its users and takes no new ones; after the grace it is
// left out (its users move) or, with DownKeep, keeps them. Without a report in req (no
// health arguments) the remembered state stands.
func (h *health) servers(p *compiledPool, req Request) []store.Server {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.Health {
		for _, s := range p.servers {
			ref := ServerRef{Pool: p.name, Server: s.Name}
			_, was := h.since[ref]
			down := reportedDown(req.Down, ref)
			switch {
			case down && !was:
				if h.since == nil {
					h.since = make(map[ServerRef]time.Time)
				}
				h.since[ref] = now
				h.count.Add(1)
			case !down && was:
				delete(h.since, ref)
				h.count.Add(-1)
			}
		}
	}
	out := make([]store.Server, 0, len(p.req.Servers))
	for _, s := range p.req.Servers {
		// req.Servers holds the configured up (accepting) and drained servers.
		configured := StateDrain
		if s.Accepting {
			configured = StateUp
		}
		switch h.stateLocked(p, s.Name, configured, now) {
		case EffectiveUp, EffectiveDrain:
			out = append(out, s)
		case EffectiveDownInGrace:
			s.Accepting = false
			out = append(out, s)
		case EffectiveDown:
			if p.policy == DownKeep {
				s.Accepting = false
				out = append(out, s)
			}
		}
	}
	return out
}

// states returns the effective state of each server of p now.
func (h *health) states(p *compiledPool) map[string]EffectiveState {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]EffectiveState, len(p.servers))
	for _, s := range p.servers {
		out[s.Name] = h.stateLocked(p, s.Name, s.State, now)
	}
	return out
}

// stateLocked is the one rule for a server's effective state, which both the decisions
// (servers) and what operators see (states) apply.
func (h *health) stateLocked(p *compiledPool, server string, configured State, now time.Time) EffectiveState {
	if configured == StateDown {
		return EffectiveDown
	}
	since, down := h.since[ServerRef{Pool: p.name, Server: server}]
	switch {
	case down && now.Sub(since) < p.grace:
		return EffectiveDownInGrace
	case down:
		return EffectiveDown
	case configured == StateDrain:
		return EffectiveDrain
	}
	return EffectiveUp
}

func reportedDown(down []ServerRef, ref ServerRef) bool {
	for _, d := range down {
		if d == ref || (d.Pool == "" && d.Server == ref.Server) {
			return true
		}
	}
	return false
}

// forgetMissing drops what it remembers of servers a new configuration no longer has.
func (h *health) forgetMissing(c *compiled) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ref := range h.since {
		p := c.pools[ref.Pool]
		keep := false
		if p != nil {
			for _, s := range p.servers {
				keep = keep || s.Name == ref.Server
			}
		}
		if !keep {
			delete(h.since, ref)
			h.count.Add(-1)
		}
	}
}
