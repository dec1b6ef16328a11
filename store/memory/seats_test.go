package memory

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/store"
	"github.com/stickyseat/stickyseat/store/storetest"
)

// hashedFixture is a store on a fake clock whose pool "p" fingerprints keys with a hash of
// the test's choosing.
type hashedFixture struct {
	t     *testing.T
	clock *storetest.Clock
	s     *Store
	p     *pool
}

func newHashedFixture(t *testing.T, hash func(string) uint32) *hashedFixture {
	clock := storetest.NewClock(time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC))
	s := New(Options{Clock: clock.Now})
	p := s.pool("p")
	if hash != nil {
		p.seatSet = newSeatSet(0, hash)
	}
	return &hashedFixture{t: t, clock: clock, s: s, p: p}
}

const testIdle = 10 * time.Second

// assign requests a seat in pool p and checks the outcome and server, and the pool's state.
func (f *hashedFixture) assign(key string, servers []store.Server, want store.Result) {
	f.t.Helper()
	req := store.Request{Pool: "p", Key: key, Servers: servers, Idle: testIdle}
	got, err := f.s.Assign(context.Background(), req)
	if err != nil || got != want {
		f.t.Fatalf("Assign(%q) = %+v, %v; want %+v", key, got, err, want)
	}
	f.check()
}

func (f *hashedFixture) check() {
	f.t.Helper()
	if err := f.p.invariants(); err != nil {
		f.t.Fatal(err)
	}
}

// liveSeat returns the server of the key's live seat, or "" when it has none.
func (f *hashedFixture) liveSeat(key string) string {
	f.t.Helper()
	seat, ok, err := f.s.LiveSeat(context.Background(), "p", key, testIdle)
	if err != nil {
		f.t.Fatalf("LiveSeat(%q): %v", key, err)
	}
	if !ok {
		return ""
	}
	if seat.Key != key {
		f.t.Fatalf("LiveSeat(%q).Key = %q", key, seat.Key)
	}
	return seat.Server
}

func (f *hashedFixture) wantSeats(want map[string]string) {
	f.t.Helper()
	for key, server := range want {
		if got := f.liveSeat(key); got != server {
			f.t.Errorf("LiveSeat(%q) server = %q; want %q", key, got, server)
		}
	}
	live := 0
	for _, server := range want {
		if server != "" {
			live++
		}
	}
	if got := f.s.Seats("p"); got != live {
		f.t.Errorf("Seats(p) = %d; want %d", got, live)
	}
}

// TestFingerprintCollisions checks that keys whose hashes are equal still get seats of their
// own, which are refreshed, evicted and expired one by one.
func TestFingerprintCollisions(t *testing.T) {
	f := newHashedFixture(t, func(string) uint32 { return 42 })
	servers := []store.Server{{Name: "s1", Quota: 10, Accepting: true}, {Name: "s2", Quota: 10, Accepting: true}}
	hit := func(server string) store.Result { return store.Result{Outcome: store.OutcomeHit, Server: server} }
	seat := func(server string) store.Result { return store.Result{Outcome: store.OutcomeNew, Server: server} }

	f.assign("u1", servers, seat("s1"))
	f.assign("u2", servers, seat("s2"))
	f.assign("u1", servers, hit("s1"))
	f.assign("u2", servers, hit("s2"))
	f.wantSeats(map[string]string{"u1": "s1", "u2": "s2", "u3": ""})

	// u2 is refreshed halfway: u1 expires alone.
	f.clock.Advance(testIdle / 2)
	f.assign("u2", servers, hit("s2"))
	f.clock.Advance(testIdle / 2)
	f.wantSeats(map[string]string{"u1": "", "u2": "s2"})
	f.check()

	f.assign("u1", servers, seat("s1"))
	f.assign("u3", servers, seat("s1"))
	if ok, err := f.s.Evict(context.Background(), "p", "u1"); !ok || err != nil {
		t.Fatalf("Evict(u1) = %v, %v; want true", ok, err)
	}
	f.check()
	f.wantSeats(map[string]string{"u1": "", "u2": "s2", "u3": "s1"})
	f.assign("u3", servers, hit("s1"))

	// u2, then u3, expire; each key is found and removed on its own.
	f.clock.Advance(testIdle / 2)
	f.wantSeats(map[string]string{"u1": "", "u2": "", "u3": "s1"})
	f.check()
	f.clock.Advance(testIdle / 2)
	f.wantSeats(map[string]string{"u1": "", "u2": "", "u3": ""})
	f.check()
}

// TestTable runs random inserts and deletes on a table whose fingerprints take few values,
// at both ends of the hash space so that probe runs collide and wrap around: every entry must
// stay reachable from its home slot, whatever deletions shifted.
func TestTable(t *testing.T) {
	for _, c := range []struct {
		segMax   int
		maxDepth uint
	}{{segMaxSlots, maxDepth}, {8, 16}, {8, 2}, {16, 0}} {
		t.Run(fmt.Sprintf("segments-of-%d-depth-%d", c.segMax, c.maxDepth), func(t *testing.T) {
			smallSegments(t, c.segMax, c.maxDepth)
			testTable(t)
		})
	}
}

func testTable(t *testing.T) {
	fps := []uint32{0, 1, 0x7fffffff, 0x40000000, 0x40000001, 0xc0000000, 0xfffffffe, 0xffffffff}
	rng := rand.New(rand.NewPCG(1, 2))
	tb := newTable(0)
	var deepest uint
	type entry struct{ fp, seat uint32 }
	var live []entry
	next := uint32(1)
	reachable := func(e entry) bool {
		sg := tb.segment(e.fp)
		mask := len(sg.slots) - 1
		want := uint64(e.fp)<<32 | uint64(e.seat)
		for j := sg.home(e.fp); sg.slots[j] != 0; j = (j + 1) & mask {
			if sg.slots[j] == want {
				return true
			}
		}
		return false
	}
	for op := range 20_000 {
		if len(live) == 0 || len(live) < 300 && rng.IntN(2) == 0 {
			e := entry{fps[rng.IntN(len(fps))], next}
			next++
			tb.insert(e.fp, e.seat)
			live = append(live, e)
		} else {
			k := rng.IntN(len(live))
			tb.delete(live[k].fp, live[k].seat)
			live = slices.Delete(live, k, k+1)
		}
		if err := checkTable(&tb); err != nil {
			t.Fatalf("op %d: %v", op, err)
		}
		deepest = max(deepest, tb.depth)
		if tb.n != len(live) {
			t.Fatalf("op %d: table holds %d entries; want %d", op, tb.n, len(live))
		}
		for _, e := range live {
			if !reachable(e) {
				t.Fatalf("op %d: seat %d (fp %#x) not reachable from its home slot", op, e.seat, e.fp)
			}
		}
	}
	// With small segments, 300 entries over these fingerprints must have split some, up to
	// the directory's bound.
	if want := min(maxDepth, 2); segMaxSlots < 64 && deepest < want {
		t.Errorf("directory depth reached %d; want %d: the segments never split", deepest, want)
	}
}

// longKey returns a distinct key of 100 bytes: with its length, 101 bytes of arena.
func longKey(i int) string {
	return fmt.Sprintf("%0100d", i)
}

// smallChunks makes arenas use chunks of size bytes until the test ends.
func smallChunks(t *testing.T, size int) {
	old := arenaChunk
	arenaChunk = size
	t.Cleanup(func() { arenaChunk = old })
}

// TestArenaCompactedUnderChurn passes many users through a pool that holds a steady number of
// seats: the arena must reclaim the keys of expired seats instead of growing with the users
// ever seen, and never need more than twice the live keys plus a few chunks.
func TestArenaCompactedUnderChurn(t *testing.T) {
	for _, chunk := range []int{4 << 10, arenaChunk} {
		t.Run(fmt.Sprintf("chunks-of-%d", chunk), func(t *testing.T) {
			smallChunks(t, chunk)
			const (
				live = 1000 // 105,000 bytes of entries
				step = testIdle / live
			)
			f := newHashedFixture(t, nil)
			servers := []store.Server{{Name: "s1", Quota: 2 * live, Accepting: true}}
			bound := 2*live*entrySize(100) + 3*chunk
			compactions := 0
			for i := range 50 * live {
				f.clock.Advance(step)
				garbage := f.p.arena.total
				req := store.Request{Pool: "p", Key: longKey(i), Servers: servers, Idle: testIdle}
				if got, err := f.s.Assign(context.Background(), req); err != nil || got.Outcome != store.OutcomeNew {
					t.Fatalf("Assign(%q) = %+v, %v; want a new seat", req.Key, got, err)
				}
				if f.p.arena.total < garbage {
					compactions++
				}
				if i >= 2*live && f.p.arena.capacity() > bound {
					t.Fatalf("after %d users: arena of %d bytes (capacity %d); want at most %d for %d live seats",
						i+1, f.p.arena.bytes(), f.p.arena.capacity(), bound, f.p.count)
				}
				if i%997 == 0 {
					f.check()
				}
			}
			f.check()
			if f.p.count != live {
				t.Errorf("seats after the churn = %d; want %d", f.p.count, live)
			}
			// 49 pools' worth of keys became garbage: at least a compaction per chunk's worth.
			if want := 49 * live * entrySize(100) / chunk / 2; compactions < want {
				t.Errorf("arena compactions for 49 pools' worth of garbage = %d; want at least %d", compactions, want)
			}
		})
	}
}

// TestBigKeysDoNotPinChunks adds and evicts a key longer than a chunk between small keys: the
// big key must get a chunk of its own, given back when it goes, instead of sealing the small
// keys' chunk each time (each small key would then pin a whole chunk).
func TestBigKeysDoNotPinChunks(t *testing.T) {
	f := newHashedFixture(t, nil)
	servers := []store.Server{{Name: "a", Quota: 1 << 30, Accepting: true}}
	big := strings.Repeat("B", arenaChunk+1)
	assign := func(k string) {
		t.Helper()
		if _, err := f.s.Assign(context.Background(), store.Request{Pool: "p", Key: k, Servers: servers, Idle: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	live := 0
	for i := range 100 {
		k := "small-" + strconv.Itoa(i)
		assign(k)
		live += entrySize(len(k))
		assign(big)
		if ok, err := f.s.Evict(context.Background(), "p", big); !ok || err != nil {
			t.Fatalf("Evict(big) = %v, %v; want true", ok, err)
		}
	}
	f.check()
	if got, bound := f.p.arena.capacity(), 2*live+2*arenaChunk; got > bound {
		t.Errorf("arena capacity %d bytes (%d chunks) for %d bytes of live keys; want at most %d", got, len(f.p.arena.chunks), live, bound)
	}
}

// TestArenaCompactedWhenIdle checks that a pool whose seats expire, with no new seat to make
// room for, frees the chunks of its arena that held them, and that the keys it keeps are
// intact.
func TestArenaCompactedWhenIdle(t *testing.T) {
	const chunk = 4 << 10
	smallChunks(t, chunk)
	const n = 3000 // below shrinkMin: the seats are not rebuilt, only the arena reclaimed
	f := newHashedFixture(t, nil)
	servers := []store.Server{{Name: "s1", Quota: n, Accepting: true}}
	for i := range n {
		if i == 2*n/3 {
			f.clock.Advance(testIdle / 2)
		}
		req := store.Request{Pool: "p", Key: longKey(i), Servers: servers, Idle: testIdle}
		if _, err := f.s.Assign(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	before := f.p.arena.bytes()
	f.clock.Advance(testIdle / 2)
	f.s.Sweep()
	f.check()
	keep := n / 3
	if got, want := f.p.arena.bytes(), keep*entrySize(100)+2*chunk; got > want || 3*got > before+3*chunk {
		t.Errorf("arena after two thirds expired = %d bytes (%d before); want at most %d", got, before, want)
	}
	seats, err := f.s.LiveSeats(context.Background(), "p", serversOf(f.s, "p"), 0, n)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range seats {
		got = append(got, st.Key)
	}
	var want []string
	for i := n - 1; i >= n-keep; i-- {
		want = append(want, longKey(i))
	}
	if !slices.Equal(got, want) {
		t.Errorf("LiveSeats after compaction: %d keys; want the %d latest, most recent first", len(got), len(want))
	}
}

// TestShrinkAfterBurst checks that a pool that held many more seats than it holds now gives
// back the slab, table and arena the burst took, and keeps working.
func TestShrinkAfterBurst(t *testing.T) {
	const (
		burst = 100_000
		keep  = 1000
	)
	f := newHashedFixture(t, nil)
	servers := []store.Server{{Name: "s1", Quota: burst, Accepting: true}, {Name: "s2", Quota: burst, Accepting: true}}
	assign := func(key string) store.Result {
		t.Helper()
		got, err := f.s.Assign(context.Background(), store.Request{Pool: "p", Key: key, Servers: servers, Idle: testIdle})
		if err != nil {
			t.Fatalf("Assign(%q): %v", key, err)
		}
		return got
	}
	for i := range burst {
		assign("burst-" + strconv.Itoa(i))
	}
	f.clock.Advance(testIdle / 2)
	keys := 0
	for i := range keep {
		key := "kept-" + strconv.Itoa(i)
		keys += entrySize(len(key))
		assign(key)
	}
	f.clock.Advance(testIdle / 2)
	f.s.Sweep()
	f.check()
	p := f.p
	if p.count != keep || p.peak != keep {
		t.Errorf("after the burst expired: %d seats, peak %d; want %d, %d", p.count, p.peak, keep, keep)
	}
	if got, want := p.slab.len(), keep+1; got != want || p.slab.capacity() != want {
		t.Errorf("slab after the burst expired: len %d, cap %d; want %d", got, p.slab.capacity(), want)
	}
	if got, want := p.table.slotCount(), func() int { t := newTable(keep); return t.slotCount() }(); got != want {
		t.Errorf("table after the burst expired: %d slots; want %d", got, want)
	}
	if p.arena.capacity() != keys || p.arena.total != 0 {
		t.Errorf("arena after the burst expired: capacity %d, garbage %d; want %d, 0", p.arena.capacity(), p.arena.total, keys)
	}
	if got := assign("kept-0"); got.Outcome != store.OutcomeHit {
		t.Errorf("Assign(kept-0) after the shrink = %+v; want a hit", got)
	}
	if got := assign("burst-0"); got.Outcome != store.OutcomeNew {
		t.Errorf("Assign(burst-0) after the shrink = %+v; want a new seat", got)
	}
	f.check()
	// The kept seats alternated between the servers; the tie then goes to s1.
	if got, want := f.s.Usage("p"), (map[string]int{"s1": keep/2 + 1, "s2": keep / 2}); !maps.Equal(got, want) {
		t.Errorf("Usage(p) = %v; want %v", got, want)
	}
}
