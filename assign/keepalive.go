package assign

import (
	"context"
	"errors"
	"fmt"

	"github.com/stickyseat/stickyseat/store"
)

// OpenConnections reports the users that hold a connection open through HAProxy right now
// (a stick table of the pool's backend tracking conn_cur, read over the runtime API).
type OpenConnections interface {
	// OpenKeys returns the keys, as HAProxy tracked them, of the pool's users with at
	// least one open connection.
	OpenKeys(ctx context.Context, pool string) ([]string, error)
}

// Touch refreshes the live seat of key in pool, as a request would, but never grants,
// moves or takes one: every server is offered as not accepting. It reports whether a live
// seat was refreshed.
func (a *Assigner) Touch(ctx context.Context, pool, key string) (bool, error) {
	p := a.cfg.Load().pools[pool]
	if p == nil {
		return false, fmt.Errorf("%w %q", ErrUnknownPool, pool)
	}
	if key == "" || len(p.touch) == 0 {
		return false, nil
	}
	req := p.req
	req.Servers = p.touch
	req.Key = NormalizeKey(key)
	res, err := a.store.Assign(ctx, req)
	if err != nil {
		return false, fmt.Errorf("touch in pool %q: %w", pool, err)
	}
	return res.Outcome == store.OutcomeHit, nil
}

// KeepOpenSeats refreshes the seat of every user with an open connection, in every pool,
// so a user whose only activity is one long stream (SSE, websocket, a long TCP session)
// keeps the seat; once the last connection closes the idle timeout runs as usual. It
// returns how many seats it refreshed and the errors it met, pool by pool.
func (a *Assigner) KeepOpenSeats(ctx context.Context, src OpenConnections) (int, error) {
	var errs []error
	touched := 0
	for name := range a.cfg.Load().pools {
		keys, err := src.OpenKeys(ctx, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("pool %q: %w", name, err))
			continue
		}
		for _, k := range keys {
			ok, err := a.Touch(ctx, name, k)
			if err != nil {
				errs = append(errs, err)
				break // the store is failing: the next round tries again
			}
			if ok {
				touched++
			}
		}
	}
	return touched, errors.Join(errs...)
}
