package main

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/haproxy"
)

// tables maps each pool to its backend, whose stick table the agent keeps in step with the
// seats; swapped on reload.
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

// keepAliveLoop keeps this node's HAProxy's tables and the seats in step every interval:
// it refreshes the seats of the users HAProxy routed by itself or holds a connection open
// for, and makes HAProxy forget the users whose seat is gone or elsewhere. Errors are logged
// when they start and when they end, not every round.
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
		res, err := a.SyncTable(ctx, rt)
		switch {
		case err != nil && !failing:
			log.Warn().Err(err).Msg("cannot keep HAProxy's table and the seats in step; retrying every interval")
			failing = true
		case err == nil && failing:
			log.Info().Msg("HAProxy's table and the seats are in step again")
			failing = false
		}
		log.Debug().Int("refreshed", res.Refreshed).Int("forgotten", res.Forgotten).Msg("HAProxy's table synced")
	}
}
