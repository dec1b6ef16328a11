package memory

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/store"
	"github.com/stickyseat/stickyseat/store/storetest"
)

// invariants returns what is wrong with the pool's internal state: the list must link every
// seat of the map once, in last-seen order, and the per-server counts and interned names must
// match the seats exactly.
func (p *pool) invariants() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	counts := make(map[uint32]int)
	n := 0
	var prev *seat
	for st := p.head; st != nil; prev, st = st, st.next {
		if n++; n > len(p.seats) {
			return fmt.Errorf("list longer than the map's %d seats", len(p.seats))
		}
		if st.prev != prev {
			return fmt.Errorf("seat %q: prev link broken", st.key)
		}
		if prev != nil && st.lastSeen < prev.lastSeen {
			return fmt.Errorf("seat %q seen at %d after seat %q seen at %d", st.key, st.lastSeen, prev.key, prev.lastSeen)
		}
		if p.seats[st.key] != st {
			return fmt.Errorf("seat %q in the list but not in the map", st.key)
		}
		counts[st.server]++
	}
	if p.tail != prev {
		return fmt.Errorf("tail is not the last seat of the list")
	}
	if n != len(p.seats) {
		return fmt.Errorf("list holds %d seats, map %d", n, len(p.seats))
	}
	for idx, name := range p.names {
		if got, want := p.used[idx], counts[uint32(idx)]; got != want {
			return fmt.Errorf("server %q (%d): count %d; %d seats", name, idx, got, want)
		}
		if name == "" {
			continue
		}
		if p.index[name] != uint32(idx) {
			return fmt.Errorf("server %q: index says %d, names say %d", name, p.index[name], idx)
		}
		if p.used[idx] == 0 {
			return fmt.Errorf("server %q holds no seat but is still interned", name)
		}
	}
	if len(p.index)+len(p.free) != len(p.names) {
		return fmt.Errorf("%d indexed + %d free names; %d interned", len(p.index), len(p.free), len(p.names))
	}
	return nil
}

// TestRandomOperationsKeepInvariants runs random requests, clock moves (backwards too), server
// lists and sweeps against one pool, checking the internal state after each.
func TestRandomOperationsKeepInvariants(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	clock := storetest.NewClock(time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC))
	s := New(Options{Clock: clock.Now})
	names := []string{"s1", "s2", "s3", "s4"}
	ops := 20_000
	if testing.Short() {
		ops = 2_000
	}
	for i := range ops {
		switch r := rng.IntN(100); {
		case r < 10:
			clock.Advance(time.Duration(rng.IntN(4000)-500) * time.Millisecond)
		case r < 12:
			s.Sweep()
		default:
			var servers []store.Server
			for _, n := range names {
				if rng.IntN(4) > 0 {
					servers = append(servers, store.Server{Name: n, Quota: rng.IntN(6), Accepting: rng.IntN(5) > 0})
				}
			}
			if len(servers) == 0 {
				continue
			}
			req := store.Request{Pool: "p", Key: "u" + strconv.Itoa(rng.IntN(40)), Servers: servers, Idle: 10 * time.Second}
			if _, err := s.Assign(context.Background(), req); err != nil {
				t.Fatalf("seed %d, op %d: Assign(%+v): %v", seed, i, req, err)
			}
		}
		if p := s.lookup("p"); p != nil {
			if err := p.invariants(); err != nil {
				t.Fatalf("seed %d, after op %d: %v", seed, i, err)
			}
		}
	}
}
