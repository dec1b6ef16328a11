package memory

import (
	"bytes"
	"container/list"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/store"
	"github.com/stickyseat/stickyseat/store/storetest"
)

// model is the semantics of one pool written as plainly as possible: a map from key to an
// element of a list in last-seen order, times in wall clock nanoseconds.
type model struct {
	idle  int64
	order *list.List // of *modelSeat, least recently seen first
	seats map[string]*list.Element
	used  map[string]int // live seats per server, none absent
}

type modelSeat struct {
	key, server string
	last        int64
}

func newModel() *model {
	return &model{order: list.New(), seats: make(map[string]*list.Element), used: make(map[string]int)}
}

func (m *model) expire(now int64) {
	for e := m.order.Front(); m.idle > 0 && e != nil && now-e.Value.(*modelSeat).last >= m.idle; e = m.order.Front() {
		m.drop(e.Value.(*modelSeat).key)
	}
}

func (m *model) drop(key string) {
	st := m.order.Remove(m.seats[key]).(*modelSeat)
	delete(m.seats, key)
	if m.used[st.server]--; m.used[st.server] == 0 {
		delete(m.used, st.server)
	}
}

// push appends a seat seen at now, clamped to the latest seat's last-seen.
func (m *model) push(st *modelSeat, now int64) {
	if b := m.order.Back(); b != nil {
		now = max(now, b.Value.(*modelSeat).last)
	}
	st.last = now
	m.seats[st.key] = m.order.PushBack(st)
}

func (m *model) assign(req store.Request, now int64) store.Result {
	m.idle = int64(req.Idle)
	m.expire(now)
	previous := ""
	if e, ok := m.seats[req.Key]; ok {
		st := e.Value.(*modelSeat)
		for _, sv := range req.Servers {
			if sv.Name == st.server {
				m.order.Remove(e)
				m.push(st, now)
				return store.Result{Outcome: store.OutcomeHit, Server: st.server}
			}
		}
		previous = st.server
		m.drop(req.Key)
	}
	used := m.used
	best := -1
	for i, sv := range req.Servers {
		if !sv.Accepting || used[sv.Name] >= sv.Quota {
			continue
		}
		if b := req.Servers[max(best, 0)]; best < 0 || used[sv.Name]*b.Quota < used[b.Name]*sv.Quota {
			best = i
		}
	}
	if best < 0 {
		return store.Result{Outcome: store.OutcomeFull, Previous: previous}
	}
	server := req.Servers[best].Name
	m.push(&modelSeat{key: req.Key, server: server}, now)
	m.used[server]++
	if previous != "" {
		return store.Result{Outcome: store.OutcomeMoved, Server: server, Previous: previous}
	}
	return store.Result{Outcome: store.OutcomeNew, Server: server}
}

// refingerprint moves the seats of p to a set whose fingerprints come from hash, as a
// store.Load gives a restored pool the seeded hash.
func refingerprint(p *pool, hash func(string) uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	set := newSeatSet(0, hash)
	for i := p.head; i != 0; i = p.slab.at(i).next {
		key := string(p.key(i))
		set.pushBack(set.add(key, hash(key), p.slab.at(i).server), p.slab.at(i).lastSeen)
	}
	p.seatSet = set
}

// burstOps is the number of operations between two clock jumps that expire most seats in a
// burst case: enough for more than shrinkMin seats to pile up.
const burstOps = 8000

// modelCase is one shape of random run.
type modelCase struct {
	hash  string
	keys  int // distinct keys
	ops   int
	clock int // per mille of operations that move the clock
	// burst gives every request the same idle time and quotas for every key, and every
	// burstOps operations expires all seats but the few refreshed last: thousands of seats
	// pile up, then the pool rebuilds its seats around the survivors.
	burst bool
	// segMax and maxDepth, when set, replace the table's segment size and directory bound,
	// so that a few hundred seats split segments and fill the directory.
	segMax   int
	maxDepth uint
	// chunk, when set, replaces the size of an arena's chunks, so that a few keys fill
	// chunks and keys longer than a chunk occur.
	chunk int
}

// TestAgainstModel runs random requests, evictions, look-ups, listings, sweeps, clock moves
// (backwards too), idle and server list changes, and Save+Load round trips against the store
// and a plain model of it, comparing every answer, under hashes that make fingerprints collide
// and probe runs wrap around, with keys long and short enough to compact the arena often.
func TestAgainstModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	// mixed is a fixed hash (FNV-1a, then a finalizer), so that a seed replays a failure.
	mixed := func(key string) uint32 {
		h := uint64(14695981039346656037)
		for i := range len(key) {
			h = (h ^ uint64(key[i])) * 1099511628211
		}
		h ^= h >> 33
		h *= 0xff51afd7ed558ccd
		h ^= h >> 33
		return uint32(h)
	}
	hashes := map[string]func(string) uint32{
		"seeded": nil,
		// every key collides: one fingerprint, one probe run
		"colliding": func(string) uint32 { return 0x80000000 },
		// four fingerprints, homed at both ends of any table
		"wrapping": func(key string) uint32 { return []uint32{0, 1, 0xfffffffe, 0xffffffff}[mixed(key)%4] },
		// 32 fingerprints in 8 runs whatever the table size
		"coarse": func(key string) uint32 { return mixed(key) & 0xe0000003 },
		// spread homes, and many keys sharing a fingerprint
		"narrow": func(key string) uint32 { return mixed(key) & 0xffff0003 },
	}
	cases := []modelCase{
		{hash: "seeded", keys: 20, ops: 10_000, clock: 60},
		{hash: "seeded", keys: 300, ops: 10_000, clock: 20},
		{hash: "colliding", keys: 20, ops: 10_000, clock: 60},
		{hash: "colliding", keys: 100, ops: 10_000, clock: 20},
		{hash: "wrapping", keys: 60, ops: 10_000, clock: 40},
		{hash: "coarse", keys: 300, ops: 10_000, clock: 20},
		{hash: "seeded", keys: 300, ops: 10_000, clock: 20, segMax: 16, maxDepth: 16},
		{hash: "coarse", keys: 300, ops: 10_000, clock: 20, segMax: 8, maxDepth: 3},
		{hash: "wrapping", keys: 60, ops: 10_000, clock: 40, segMax: 8, maxDepth: 16},
		{hash: "seeded", keys: 300, ops: 10_000, clock: 20, chunk: 256},
		{hash: "seeded", keys: 60, ops: 10_000, clock: 40, chunk: 2048},
		{hash: "colliding", keys: 100, ops: 10_000, clock: 20, segMax: 8, maxDepth: 4, chunk: 1024},
		{hash: "coarse", keys: 300, ops: 10_000, clock: 20, segMax: 8, maxDepth: 16, chunk: 512},
		{hash: "seeded", keys: 12_000, ops: 3 * burstOps, clock: 1, burst: true},
		{hash: "narrow", keys: 12_000, ops: 3 * burstOps, clock: 1, burst: true},
		{hash: "seeded", keys: 12_000, ops: 3 * burstOps, clock: 1, burst: true, segMax: 64, maxDepth: 16},
	}
	if testing.Short() {
		cases = cases[:len(cases)-3]
	}
	for i, c := range cases {
		name := fmt.Sprintf("%s/%d", c.hash, c.keys)
		if c.segMax > 0 {
			name += fmt.Sprintf("/segments-of-%d-depth-%d", c.segMax, c.maxDepth)
		}
		if c.chunk > 0 {
			name += fmt.Sprintf("/chunks-of-%d", c.chunk)
		}
		t.Run(name, func(t *testing.T) {
			if c.segMax > 0 {
				smallSegments(t, c.segMax, c.maxDepth)
			}
			if c.chunk > 0 {
				smallChunks(t, c.chunk)
			}
			runModel(t, seed+uint64(i), c, hashes[c.hash])
		})
	}
}

func runModel(t *testing.T, seed uint64, c modelCase, hash func(string) uint32) {
	rng := rand.New(rand.NewPCG(seed, 0))
	ctx := context.Background()
	clock := storetest.NewClock(time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC))
	now := func() int64 { return clock.Now().UnixNano() }
	s := New(Options{Clock: clock.Now})
	p := s.pool("p")
	if hash != nil {
		p.seatSet = newSeatSet(rng.IntN(20), hash)
	}
	m := newModel()
	// A third of the keys have a two-byte length in the arena, some are much longer.
	key := func(n int) string {
		switch {
		case n%21 == 0:
			return strings.Repeat("L", 300) + strconv.Itoa(n)
		case n%3 == 0:
			return strings.Repeat("k", 120+n%20) + strconv.Itoa(n)
		}
		return "u" + strconv.Itoa(n)
	}
	names := []string{"a", "b", "c", "d", "e"}
	idles := []time.Duration{time.Second, 5 * time.Second, 10 * time.Second, 40 * time.Second}
	idle := idles[3]
	fail := func(op int, format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d, op %d: %s", seed, op, fmt.Sprintf(format, args...))
	}
	assign := func(op int) {
		var servers []store.Server
		first := rng.IntN(len(names))
		for j := range 1 + rng.IntN(len(names)) {
			quota := rng.IntN(c.keys/2 + 2)
			if c.burst {
				quota = c.keys
			}
			servers = append(servers, store.Server{Name: names[(first+j)%len(names)], Quota: quota, Accepting: rng.IntN(8) > 0})
		}
		if !c.burst {
			idle = idles[rng.IntN(len(idles))]
		}
		req := store.Request{Pool: "p", Key: key(rng.IntN(c.keys)), Servers: servers, Idle: idle}
		got, err := s.Assign(ctx, req)
		if want := m.assign(req, now()); err != nil || got != want {
			fail(op, "Assign(%q, %+v) = %+v, %v; want %+v", req.Key, servers, got, err, want)
		}
	}
	var rebuilds, compactions, loads int
	var deepest uint // the table's deepest directory
	var chunks int   // the most chunks an arena had
	for op := range c.ops {
		deepest = max(deepest, p.table.depth)
		chunks = max(chunks, len(p.arena.chunks))
		before, slab, garbage := p, p.slab.capacity(), p.arena.total
		switch r := rng.IntN(1000); {
		case r < c.clock:
			d := time.Duration(rng.IntN(3000)-600) * time.Millisecond
			if rng.IntN(20) == 0 {
				d = time.Duration(rng.IntN(60)) * time.Second
			}
			clock.Advance(d)
		case r < 100:
			s.Sweep()
			m.expire(now())
		case r < 130:
			k := key(rng.IntN(c.keys))
			got, err := s.Evict(ctx, "p", k)
			m.expire(now())
			_, want := m.seats[k]
			if want {
				m.drop(k)
			}
			if err != nil || got != want {
				fail(op, "Evict(%q) = %v, %v; want %v", k, got, err, want)
			}
		case r < 160:
			k := key(rng.IntN(c.keys))
			got, ok, err := s.LiveSeat(ctx, "p", k, 0)
			m.expire(now())
			e, want := m.seats[k]
			if err != nil || ok != want {
				fail(op, "LiveSeat(%q) found = %v, %v; want %v", k, ok, err, want)
			}
			if ok {
				st := e.Value.(*modelSeat)
				if got.Key != k || got.Server != st.server || got.LastSeen.UnixNano() != st.last || got.Expires.UnixNano() != st.last+m.idle {
					fail(op, "LiveSeat(%q) = %+v; want %+v, idle %d", k, got, *st, m.idle)
				}
			}
		case r < 170:
			limit := rng.IntN(c.keys + 2)
			got, err := s.LiveSeats(ctx, "p", serversOf(s, "p"), 0, limit)
			m.expire(now())
			if err != nil {
				fail(op, "LiveSeats: %v", err)
			}
			var want []store.Seat
			for e := m.order.Back(); e != nil && len(want) < limit; e = e.Prev() {
				st := e.Value.(*modelSeat)
				last := time.Unix(0, st.last)
				want = append(want, store.Seat{Key: st.key, Server: st.server, LastSeen: last, Expires: last.Add(time.Duration(m.idle))})
			}
			if len(got) != len(want) {
				fail(op, "LiveSeats(%d): %d seats; want %d", limit, len(got), len(want))
			}
			for i := range got {
				if g, w := got[i], want[i]; g.Key != w.Key || g.Server != w.Server || !g.LastSeen.Equal(w.LastSeen) || !g.Expires.Equal(w.Expires) {
					fail(op, "LiveSeats(%d)[%d] = %+v; want %+v", limit, i, g, w)
				}
			}
		case r < 180:
			got := s.Usage("p")
			m.expire(now())
			if want := m.used; !maps.Equal(got, want) {
				fail(op, "Usage = %v; want %v", got, want)
			}
			if got := s.Seats("p"); got != len(m.seats) {
				fail(op, "Seats = %d; want %d", got, len(m.seats))
			}
		case r < 183 && rng.IntN(10) == 0:
			// Save, maybe let time pass, load into a new store on the same clock and go on
			// with it: every seat keeps its life left, a future last-seen counts as now.
			var buf bytes.Buffer
			n, err := s.Save(&buf)
			m.expire(now())
			if err != nil || n != len(m.seats) {
				fail(op, "Save = %d, %v; want %d seats", n, err, len(m.seats))
			}
			if rng.IntN(2) == 0 {
				clock.Advance(time.Duration(rng.Int64N(m.idle/2 + 1)))
			}
			saved := len(m.seats)
			m.expire(now())
			s = New(Options{Clock: clock.Now})
			restored, dropped, err := s.Load(&buf)
			if err != nil || restored != len(m.seats) || dropped != saved-len(m.seats) {
				fail(op, "Load = %d, %d, %v; want %d restored, %d dropped", restored, dropped, err, len(m.seats), saved-len(m.seats))
			}
			for e := m.order.Front(); e != nil; e = e.Next() {
				st := e.Value.(*modelSeat)
				st.last = min(st.last, now())
			}
			if len(m.seats) == 0 {
				m.idle = 0 // the pool was not saved
			}
			p = s.pool("p")
			if err := p.invariants(); err != nil {
				fail(op, "after Load: %v", err)
			}
			if hash != nil {
				refingerprint(p, hash)
			}
			loads++
		default:
			assign(op)
		}
		if c.burst && op%burstOps == burstOps-1 {
			// Most seats expire; a few, refreshed meanwhile, stay for the rebuild to keep.
			clock.Advance(idle / 2)
			for range 300 {
				assign(op)
			}
			clock.Advance(idle / 2)
		}
		if p == before && p.slab.capacity() < slab {
			rebuilds++
		} else if p == before && p.arena.total < garbage {
			compactions++
		}
		if c.keys < 1000 || op%500 == 0 {
			if err := p.invariants(); err != nil {
				fail(op, "%v", err)
			}
		}
	}
	if err := p.invariants(); err != nil {
		fail(c.ops, "%v", err)
	}
	t.Logf("seed %d: %d rebuilds, %d arena compactions, %d loads, directory depth up to %d; %d seats at the end", seed, rebuilds, compactions, loads, deepest, len(m.seats))
	if c.chunk > 0 && (compactions == 0 || chunks < 3) {
		t.Errorf("seed %d: %d arena compactions in at most %d chunks; the case tests nothing of chunks", seed, compactions, chunks)
	}
	// Colliding keys share every bit of their fingerprint: no split can divide them, and the
	// segment doubles instead.
	if c.segMax > 0 && c.maxDepth > 0 && c.hash != "colliding" && deepest == 0 {
		t.Errorf("seed %d: the table never split a segment; the case tests nothing of splits", seed)
	}
}

// smallSegments makes tables split segments past segMax slots and stop doubling their
// directory at depth, until the test ends. Tests of this package do not run in parallel.
func smallSegments(t *testing.T, segMax int, depth uint) {
	oldMax, oldDepth := segMaxSlots, maxDepth
	segMaxSlots, maxDepth = segMax, depth
	t.Cleanup(func() { segMaxSlots, maxDepth = oldMax, oldDepth })
}
