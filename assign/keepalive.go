package assign

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/stickyseat/stickyseat/store"
)

// LocalTable is this node's HAProxy's own table of a pool's users (the stick table of the
// pool's backend, read and written over the runtime API). HAProxy routes the users it lists
// with a server by itself, without asking the agent (the fast path). It must be safe for
// concurrent use: a pass forgets several users at once.
type LocalTable interface {
	// Snapshot returns the pool's entries and HAProxy's view of its servers' health. A pool
	// without a table has an empty snapshot and no error.
	Snapshot(ctx context.Context, pool string) (TableSnapshot, error)
	// Forget makes HAProxy stop routing the user by itself: their next request asks the
	// agent. Forgetting a user who is not in the table is not an error.
	Forget(ctx context.Context, pool, key string) error
}

// TableSnapshot is what one read of a pool's table found.
type TableSnapshot struct {
	// Entries are the users HAProxy routes by itself or holds a connection open for.
	Entries []TableEntry
	// Health is true when Down is HAProxy's view: every server not in it is up.
	Health bool
	// Down names the servers HAProxy sees DOWN or in maintenance.
	Down []string
}

// TableEntry is one user in a pool's table.
type TableEntry struct {
	// Key is the user key as HAProxy read it.
	Key string
	// Server is the server HAProxy sends the user to without asking the agent; empty when
	// none (the user only has a connection open).
	Server string
	// Open is true while the user has at least one connection open through HAProxy.
	Open bool
}

// SyncResult counts what one pass of SyncTable did.
type SyncResult struct {
	// Refreshed counts the live seats refreshed (users HAProxy served or holds open).
	Refreshed int
	// Forgotten counts the users HAProxy was told to stop routing by itself.
	Forgotten int
}

// Touch refreshes the live seat of key in pool, as a request would, but never grants,
// moves or queues: every server is offered as not accepting. It reports whether a live
// seat was refreshed.
func (a *Assigner) Touch(ctx context.Context, pool, key string) (bool, error) {
	p := a.cfg.Load().pools[pool]
	if p == nil {
		return false, fmt.Errorf("%w %q", ErrUnknownPool, pool)
	}
	server, err := a.touch(ctx, p, key)
	return server != "", err
}

// touch refreshes key's live seat and returns its server; empty when there is none.
func (a *Assigner) touch(ctx context.Context, p *compiledPool, key string) (string, error) {
	if key == "" || len(p.touch) == 0 {
		return "", nil
	}
	req := p.req
	req.Servers = p.touch
	req.Queue = store.Queue{} // a touch never puts anyone in line
	req.Key = NormalizeKey(key)
	res, err := a.store.Assign(ctx, req)
	if err != nil {
		return "", fmt.Errorf("touch in pool %q: %w", p.name, err)
	}
	if res.Outcome != store.OutcomeHit {
		return "", nil
	}
	return res.Server, nil
}

// SyncTable keeps HAProxy's tables and the seats in step, pool by pool:
//   - HAProxy's view of its servers' health is recorded as if a request had carried it (the
//     users it routes by itself never tell the agent);
//   - the seat of every listed user (served by this HAProxy within its table's expiry, or
//     holding a connection open) is refreshed, so a user active only through HAProxy's own
//     routing, or through one long stream, keeps the seat;
//   - a user HAProxy routes by itself whose seat is gone (expired, evicted, moved, or on a
//     server down past its grace) or on another server is forgotten: their next request
//     asks the agent.
//
// When the store fails the pass stops for that pool and the table is left as it is: users
// HAProxy knows keep their server while the store is down (newcomers are refused).
func (a *Assigner) SyncTable(ctx context.Context, t LocalTable) (SyncResult, error) {
	var errs []error
	var res SyncResult
	for name, p := range a.cfg.Load().pools {
		snap, err := t.Snapshot(ctx, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("pool %q: %w", name, err))
			continue
		}
		if snap.Health {
			req := Request{Pool: name, Health: true}
			for _, s := range snap.Down {
				req.Down = append(req.Down, ServerRef{Pool: name, Server: s})
			}
			a.health.servers(p, req)
		}
		// The servers a seat may still be on: up, draining, down for less than the grace (or
		// down, when the pool's users wait for their server).
		keeps := map[string]bool{}
		for _, s := range a.health.servers(p, Request{}) {
			keeps[s.Name] = true
		}
		r, err := a.syncEntries(ctx, t, p, keeps, snap.Entries)
		res.Refreshed += r.Refreshed
		res.Forgotten += r.Forgotten
		if err != nil {
			errs = append(errs, fmt.Errorf("pool %q: %w", name, err))
		}
	}
	return res, errors.Join(errs...)
}

// syncWorkers is how many entries of one pool are synced at once: a store shared over the
// network (Redis) batches concurrent calls, so a pass over 100k users takes a fraction of
// the round trips a sequential one would. Few enough that a pass leaves the store to the
// requests asking the agent (the fault suite's recovery after Redis comes back was slower
// with 32 than with 4).
const syncWorkers = 8

// syncEntries refreshes and, where needed, forgets the entries of pool p. A store error
// stops the pool's pass (the entries not yet done keep their server until the next pass).
func (a *Assigner) syncEntries(ctx context.Context, t LocalTable, p *compiledPool, keeps map[string]bool, entries []TableEntry) (SyncResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu   sync.Mutex
		res  SyncResult
		errs []error
		wg   sync.WaitGroup
	)
	if len(entries) == 0 {
		return res, nil
	}
	// The first entry alone: while the store is down the pass costs it one failed call,
	// not one per worker (a burst of failures, or of timeouts, would hold back the requests
	// that ask the agent once the store is back).
	refreshed, forgotten, storeErr, err := a.syncEntry(ctx, t, p, keeps, entries[0])
	if storeErr != nil {
		return res, storeErr
	}
	res.Refreshed, res.Forgotten = b2i(refreshed), b2i(forgotten)
	if err != nil {
		errs = append(errs, err)
	}
	entries = entries[1:]
	next := make(chan TableEntry)
	for range min(syncWorkers, len(entries)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range next {
				refreshed, forgotten, storeErr, err := a.syncEntry(ctx, t, p, keeps, e)
				mu.Lock()
				if refreshed {
					res.Refreshed++
				}
				if forgotten {
					res.Forgotten++
				}
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
				if storeErr != nil {
					cancel(storeErr) // the store is failing: the next pass tries again
				}
			}
		}()
	}
feed:
	for _, e := range entries {
		select {
		case next <- e:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		errs = append(errs, cause)
	}
	return res, errors.Join(errs...)
}

// syncEntry syncs one entry: storeErr is set when the store failed (nothing was changed),
// err when HAProxy could not be told to forget the user.
func (a *Assigner) syncEntry(ctx context.Context, t LocalTable, p *compiledPool, keeps map[string]bool, e TableEntry) (refreshed, forgotten bool, storeErr, err error) {
	server := ""
	if e.Server == "" || keeps[e.Server] || e.Open {
		if server, storeErr = a.touch(ctx, p, e.Key); storeErr != nil {
			return false, false, storeErr, nil
		}
	}
	// A user HAProxy routes by itself keeps that only while their live seat is on that
	// server and the server may still hold it (not down past its grace): else their next
	// request must ask the agent, which moves or refuses them.
	if e.Server == "" || (e.Server == server && keeps[server]) {
		return server != "", false, nil, nil
	}
	if err := t.Forget(ctx, p.name, e.Key); err != nil {
		return server != "", false, nil, err
	}
	return server != "", true, nil, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
