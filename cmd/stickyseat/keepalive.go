package main

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/haproxy"
)

// tables maps each pool to its backend's connection table, swapped on reload.
type tables struct {
	m atomic.Pointer[map[string]string]
}

func newTables(p pools) *tables {
	t := &tables{}
	t.set(p)
	return t
}

func (t *tables) set(p pools) {
	m := make(map[string]string, len(p.HAProxy))
	for _, hp := range p.HAProxy {
		backend := hp.Backend
		if backend == "" {
			backend = haproxy.BackendPrefix + hp.Name
		}
		m[hp.Name] = backend
	}
	t.m.Store(&m)
}

// keepAliveLoop refreshes, every interval, the seats of users with a connection open through
// this node's HAProxy. Errors are logged when they start and when they end, not every round.
func keepAliveLoop(ctx context.Context, log zerolog.Logger, a *assign.Assigner, socket string, t *tables, every time.Duration) {
	log = log.With().Str("component", "keepalive").Str("haproxy_socket", socket).Logger()
	tick := time.NewTicker(every)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rt := haproxy.Runtime{Addr: socket, Tables: *t.m.Load(), Timeout: every / 2}
		n, err := a.KeepOpenSeats(ctx, rt)
		switch {
		case err != nil && !failing:
			log.Warn().Err(err).Msg("cannot keep open connections' seats alive; retrying every interval")
			failing = true
		case err == nil && failing:
			log.Info().Msg("keeping open connections' seats alive again")
			failing = false
		}
		log.Debug().Int("refreshed", n).Msg("open connections' seats refreshed")
	}
}
