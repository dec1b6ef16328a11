package agent

import (
	"sync/atomic"

	"github.com/stickyseat/stickyseat/assign"
)

// counters are the agent's running totals; Stats copies them.
type counters struct {
	conns, frames, panics, badFrames, refusedConns, evictedConns, helloTimeouts, acceptErrors atomic.Uint64
	status                                                                                    [8]atomic.Uint64
}

func (c *counters) count(s assign.Status) {
	if int(s) < len(c.status) {
		c.status[s].Add(1)
	}
}

// Stats is a snapshot of what the agent has done since it started.
type Stats struct {
	// Connections accepted.
	Connections uint64
	// Open is the number of connections being served now.
	Open int
	// Frames is NOTIFY frames handled.
	Frames uint64
	// Decisions counts answers by status name (hit, new, moved, full, invalid, error);
	// "invalid" covers a missing key, an unknown pool and unusable argument types.
	Decisions map[string]uint64
	// Panics recovered in the handler or the frame decoder.
	Panics uint64
	// BadFrames counts connections closed by the frame guard.
	BadFrames uint64
	// RefusedConnections counts connections closed at once, beyond MaxConnections, when
	// every connection held was busy.
	RefusedConnections uint64
	// EvictedConnections counts idle connections closed, beyond MaxConnections, to let a
	// new one in.
	EvictedConnections uint64
	// AcceptErrors counts accepts that failed and were retried (out of file descriptors).
	AcceptErrors uint64
	// HelloTimeouts counts connections closed for not sending their HAPROXY-HELLO within
	// HelloTimeout.
	HelloTimeouts uint64
}

// Stats returns the agent's counters.
func (a *Agent) Stats() Stats {
	a.mu.Lock()
	open := len(a.conns)
	a.mu.Unlock()
	s := Stats{
		Open:               open,
		Connections:        a.stats.conns.Load(),
		Frames:             a.stats.frames.Load(),
		Panics:             a.stats.panics.Load(),
		BadFrames:          a.stats.badFrames.Load(),
		RefusedConnections: a.stats.refusedConns.Load(),
		EvictedConnections: a.stats.evictedConns.Load(),
		AcceptErrors:       a.stats.acceptErrors.Load(),
		HelloTimeouts:      a.stats.helloTimeouts.Load(),
		Decisions:          make(map[string]uint64, len(assign.Statuses)),
	}
	for _, st := range assign.Statuses {
		s.Decisions[st.String()] = a.stats.status[st].Load()
	}
	return s
}
