package assign

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/stickyseat/stickyseat/store"
)

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
		since, down := h.since[ServerRef{Pool: p.name, Server: s.Name}]
		switch {
		case !down:
			out = append(out, s)
		case now.Sub(since) < p.grace || p.policy == DownKeep:
			s.Accepting = false
			out = append(out, s)
		}
	}
	return out
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
