package memory

import (
	"context"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/store"
	"github.com/stickyseat/stickyseat/store/storetest"
)

// invariants returns what is wrong with the pool's internal state: the list must link every
// live seat of the slab once, in last-seen order; the table must find each of them by key and
// hold nothing else; the free elements and the arena's garbage must account for the rest; the
// per-server counts and interned names must match the seats exactly.
func (p *pool) invariants() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	counts := make(map[uint32]int)
	n := 0
	live := make([]int, len(p.arena.chunks)) // bytes of live entries per chunk
	var prev uint32
	for i := p.head; i != 0; prev, i = i, p.slab.at(i).next {
		if n++; n > p.count {
			return fmt.Errorf("list longer than the %d seats counted", p.count)
		}
		st := p.slab.at(i)
		owner, key, size := p.arena.entry(st.key)
		if owner != i {
			return fmt.Errorf("seat %q (%d): its arena entry names seat %d", key, i, owner)
		}
		c, _ := splitOff(st.key)
		live[c] += size
		if st.prev != prev {
			return fmt.Errorf("seat %q: prev link broken", key)
		}
		if prev != 0 && st.lastSeen < p.slab.at(prev).lastSeen {
			return fmt.Errorf("seat %q seen at %d after seat %q seen at %d", key, st.lastSeen, p.key(prev), p.slab.at(prev).lastSeen)
		}
		if fp := p.hash(string(key)); st.fp != fp {
			return fmt.Errorf("seat %q: fingerprint %#x; its key hashes to %#x", key, st.fp, fp)
		}
		if got := p.find(string(key), st.fp); got != i {
			return fmt.Errorf("seat %q (%d) in the list, but the table finds %d", key, i, got)
		}
		counts[st.server]++
	}
	if p.tail != prev {
		return fmt.Errorf("tail is not the last seat of the list")
	}
	if n != p.count {
		return fmt.Errorf("list holds %d seats, count %d", n, p.count)
	}
	if p.table.n != n {
		return fmt.Errorf("table holds %d entries; %d seats", p.table.n, n)
	}
	if err := checkTable(&p.table); err != nil {
		return err
	}
	free := 0
	for i := p.free; i != 0; i = p.slab.at(i).next {
		if free++; free > p.slab.len() {
			return fmt.Errorf("free list loops")
		}
	}
	if 1+n+free != p.slab.len() {
		return fmt.Errorf("slab of %d: %d seats + %d free + 1", p.slab.len(), n, free)
	}
	if err := checkArena(&p.arena, live); err != nil {
		return err
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
	if len(p.index)+len(p.freeNames) != len(p.names) {
		return fmt.Errorf("%d indexed + %d free names; %d interned", len(p.index), len(p.freeNames), len(p.names))
	}
	return nil
}

// testHashes are the key hashes the random test runs under: the real one, one under which
// every key collides, and one under which probe runs wrap around the end of the table.
var testHashes = []struct {
	name string
	hash func(string) uint32
}{
	{"seeded", nil},
	{"colliding", func(string) uint32 { return 0x9e3779b9 }},
	{"wrapping", func(key string) uint32 {
		return []uint32{0, 1, 0xfffffffe, 0xffffffff}[len(key)%4]
	}},
}

// TestRandomOperationsKeepInvariants runs random requests, evictions, clock moves (backwards
// too), server lists and sweeps against one pool, checking the internal state after each.
func TestRandomOperationsKeepInvariants(t *testing.T) {
	for _, small := range []bool{false, true} {
		for _, h := range testHashes {
			name := h.name
			if small {
				name += "/small-chunks-and-segments"
			}
			t.Run(name, func(t *testing.T) {
				if small {
					// 40 keys of up to 170 bytes fill chunks of 512 bytes and split
					// segments of 8 slots.
					smallChunks(t, 512)
					smallSegments(t, 8, 16)
				}
				randomOperations(t, h.hash)
			})
		}
	}
}

// randomOperations is one run of TestRandomOperationsKeepInvariants under hash (nil: the
// seeded one).
func randomOperations(t *testing.T, hash func(string) uint32) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	clock := storetest.NewClock(time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC))
	s := New(Options{Clock: clock.Now})
	p := s.pool("p")
	if hash != nil {
		p.seatSet = newSeatSet(0, hash)
	}
	names := []string{"s1", "s2", "s3", "s4"}
	// A quarter of the keys are longer than 127 bytes: their length takes two
	// bytes in the arena.
	key := func(n int) string {
		if n%4 == 0 {
			return strings.Repeat("k", 130+n) + strconv.Itoa(n)
		}
		return "u" + strconv.Itoa(n)
	}
	ops := 20_000
	if testing.Short() {
		ops = 2_000
	}
	compactions := 0
	for i := range ops {
		garbage := p.arena.total
		switch r := rng.IntN(100); {
		case r < 10:
			clock.Advance(time.Duration(rng.IntN(4000)-500) * time.Millisecond)
		case r < 12:
			s.Sweep()
		case r < 15:
			if _, err := s.Evict(context.Background(), "p", key(rng.IntN(40))); err != nil {
				t.Fatalf("seed %d, op %d: Evict: %v", seed, i, err)
			}
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
			req := store.Request{Pool: "p", Key: key(rng.IntN(40)), Servers: servers, Idle: 10 * time.Second}
			if _, err := s.Assign(context.Background(), req); err != nil {
				t.Fatalf("seed %d, op %d: Assign(%+v): %v", seed, i, req, err)
			}
		}
		if err := p.invariants(); err != nil {
			t.Fatalf("seed %d, after op %d: %v", seed, i, err)
		}
		if p.arena.total < garbage {
			compactions++
		}
	}
	t.Logf("%d arena compactions", compactions)
}

// checkTable checks the table's directory and the count and load of every segment.
func checkTable(t *table) error {
	if len(t.dir) != 1<<t.depth {
		return fmt.Errorf("directory of %d entries at depth %d", len(t.dir), t.depth)
	}
	entries := 0
	var err error
	t.segments(func(s *segment) {
		n := 0
		for _, e := range s.slots {
			if e == 0 {
				continue
			}
			n++
			// The entry's top bits must choose this very segment.
			if got := t.segment(uint32(e >> 32)); got != s && err == nil {
				err = fmt.Errorf("entry %#x sits in a segment its fingerprint does not choose", e)
			}
		}
		if (n != s.n || !fits(n, len(s.slots))) && err == nil {
			err = fmt.Errorf("segment: %d entries in %d slots, %d counted", n, len(s.slots), s.n)
		}
		if s.depth > t.depth && err == nil {
			err = fmt.Errorf("segment of depth %d in a directory of depth %d", s.depth, t.depth)
		}
		if want := uint(32 - bits.TrailingZeros(uint(len(s.slots)))); s.shift != want && err == nil {
			err = fmt.Errorf("segment of %d slots with shift %d; want %d", len(s.slots), s.shift, want)
		}
		entries += n
	})
	if err != nil {
		return err
	}
	if entries != t.n {
		return fmt.Errorf("table: %d entries, %d counted", entries, t.n)
	}
	// A segment of depth d fills an aligned run of 1<<(depth-d) directory entries.
	for j := 0; j < len(t.dir); {
		s := t.dir[j]
		span := 1 << (t.depth - s.depth)
		if j%span != 0 {
			return fmt.Errorf("segment of depth %d starts at directory entry %d, not a multiple of %d", s.depth, j, span)
		}
		for k := j; k < j+span; k++ {
			if k >= len(t.dir) || t.dir[k] != s {
				return fmt.Errorf("segment of depth %d at directory entry %d does not fill its run of %d", s.depth, j, span)
			}
		}
		j += span
	}
	return nil
}

// checkArena checks the arena against the bytes of live entries each chunk holds: every chunk
// but the current one is less than half garbage, freed chunks are listed as free, and the
// garbage counts add up.
func checkArena(a *arena, live []int) error {
	if len(a.garbage) != len(a.chunks) || a.cur >= len(a.chunks) || a.chunks[a.cur] == nil {
		return fmt.Errorf("arena: %d chunks, %d garbage counts, current %d", len(a.chunks), len(a.garbage), a.cur)
	}
	total, freed := 0, 0
	for c, b := range a.chunks {
		if b == nil {
			freed++
			if live[c] != 0 || a.garbage[c] != 0 || !slices.Contains(a.free, c) {
				return fmt.Errorf("arena: freed chunk %d: %d live bytes, %d garbage, listed free: %v", c, live[c], a.garbage[c], slices.Contains(a.free, c))
			}
			continue
		}
		if got := len(b) - live[c]; got != a.garbage[c] {
			return fmt.Errorf("arena: chunk %d of %d bytes: %d live, garbage counted %d", c, len(b), live[c], a.garbage[c])
		}
		if c != a.cur && 2*a.garbage[c] >= len(b) {
			return fmt.Errorf("arena: sealed chunk %d of %d bytes is %d garbage: it should have been evacuated", c, len(b), a.garbage[c])
		}
		total += a.garbage[c]
	}
	if total != a.total || freed != len(a.free) {
		return fmt.Errorf("arena: garbage %d, counted %d; %d freed chunks, %d listed", total, a.total, freed, len(a.free))
	}
	return nil
}
