package memory

import (
	"context"
	"slices"
	"time"

	"github.com/stickyseat/stickyseat/store"
)

// LiveCounts returns the live seats on each listed server of the pool (servers with none are
// absent). The pool already knows its idle time, so idle is not needed here.
func (s *Store) LiveCounts(_ context.Context, pool string, servers []string, _ time.Duration) (map[string]int, error) {
	usage := s.Usage(pool)
	out := make(map[string]int, len(servers))
	for _, name := range servers {
		if n := usage[name]; n > 0 {
			out[name] = n
		}
	}
	return out, nil
}

// LiveSeats returns up to limit live seats on the listed servers of the pool, most recently
// seen first.
func (s *Store) LiveSeats(_ context.Context, pool string, servers []string, _ time.Duration, limit int) ([]store.Seat, error) {
	p := s.lookup(pool)
	if p == nil || limit <= 0 {
		return nil, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expire(s.now())
	listed := make([]bool, len(p.names))
	for i, name := range p.names {
		listed[i] = slices.Contains(servers, name)
	}
	var out []store.Seat
	for i := p.tail; i != 0 && len(out) < limit; i = p.slab.at(i).prev {
		if listed[p.slab.at(i).server] {
			out = append(out, s.seat(p, i))
		}
	}
	return out, nil
}

// Evict frees the user's seat at once; the next request is a newcomer's. It reports whether
// a live seat was freed.
func (s *Store) Evict(_ context.Context, pool, key string) (bool, error) {
	p := s.lookup(pool)
	if p == nil {
		return false, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expire(s.now())
	evicted := false
	if p.line != nil {
		if pl := p.line.places[key]; pl != nil {
			p.line.leave(pl)
			evicted = true
		}
	}
	if i := p.find(key, p.hash(key)); i != 0 {
		p.remove(i)
		p.changes++
		evicted = true
	}
	return evicted, nil
}

// Line returns the pool's line with up to limit places from its head.
func (s *Store) Line(_ context.Context, pool string, timeout time.Duration, limit int) (store.Line, error) {
	p := s.lookup(pool)
	if p == nil {
		return store.Line{}, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.line
	if l == nil {
		return store.Line{}, nil
	}
	now := s.now()
	if timeout > 0 {
		l.lapse(now, timeout)
	}
	out := store.Line{Length: l.len(), Lapsed: l.lapsed}
	l.headTickets(func(pl *place) bool {
		if len(out.Head) >= limit {
			return false
		}
		asked := s.epoch.Add(time.Duration(pl.asked))
		out.Head = append(out.Head, store.Place{Key: pl.key, Position: len(out.Head) + 1,
			Joined: s.epoch.Add(time.Duration(pl.joined)), LastSeen: asked, Lapses: asked.Add(timeout)})
		return true
	})
	return out, nil
}

// LiveSeat returns the user's live seat, if any.
func (s *Store) LiveSeat(_ context.Context, pool, key string, _ time.Duration) (store.Seat, bool, error) {
	p := s.lookup(pool)
	if p == nil {
		return store.Seat{}, false, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expire(s.now())
	i := p.find(key, p.hash(key))
	if i == 0 {
		return store.Seat{}, false, nil
	}
	return s.seat(p, i), true, nil
}

// seat describes seat i of pool p, whose lock the caller holds.
func (s *Store) seat(p *pool, i uint32) store.Seat {
	st := p.slab.at(i)
	last := s.epoch.Add(time.Duration(st.lastSeen))
	return store.Seat{Key: string(p.key(i)), Server: p.names[st.server], LastSeen: last, Expires: last.Add(time.Duration(p.idle))}
}
