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
	i := p.find(key, p.hash(key))
	if i == 0 {
		return false, nil
	}
	p.remove(i)
	p.changes++
	return true, nil
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
