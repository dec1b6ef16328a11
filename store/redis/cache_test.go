package redis

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/store"
)

func TestHitCacheBounds(t *testing.T) {
	t0 := testStart
	tests := []struct {
		name    string
		max     int
		puts    int           // entries u0, u1, ... refreshed at t0, t0+1ns, ...
		idle    time.Duration // of every entry
		touchAt time.Duration // after t0, one get of an unknown key
		wantLen int
		wantU0  bool // u0 still answered at t0+touchAt
	}{
		{"below the cap", 10, 5, time.Minute, 0, 5, true},
		{"cap evicts the oldest", 3, 5, time.Minute, 0, 3, false},
		{"access sweeps expired entries of other keys", 100, 5, time.Second, time.Second + 10, 0, false},
		{"sweep is bounded per access", 100, sweepLimit + 5, time.Second, time.Second + 100, 5, false},
		{"live entries stay", 100, 5, time.Second, time.Second - 1, 5, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newHitCache(tt.max, t0)
			for i := range tt.puts {
				c.put("p", "u"+strconv.Itoa(i), "s1", t0.Add(time.Duration(i)), tt.idle)
			}
			c.get("p", "unknown", t0.Add(tt.touchAt))
			if got := c.len(); got != tt.wantLen {
				t.Errorf("len after %d puts and one get = %d; want %d", tt.puts, got, tt.wantLen)
			}
			if _, got := c.get("p", "u0", t0.Add(tt.touchAt)); got != tt.wantU0 {
				t.Errorf("get(u0) found = %v; want %v", got, tt.wantU0)
			}
		})
	}
}

func TestHitCacheEntry(t *testing.T) {
	c := newHitCache(10, testStart)
	c.put("p", "u", "s1", testStart, time.Second)
	c.put("p", "u", "s2", testStart.Add(time.Millisecond), time.Second) // refreshed elsewhere
	c.put("p", "u", "s3", testStart, time.Second)                       // an older call finishing late
	tests := []struct {
		at         time.Duration
		wantServer string
		wantFound  bool
	}{
		{0, "s2", true},
		{time.Second, "s2", true},
		{time.Second + time.Millisecond, "", false}, // expired exactly idle after the refresh
	}
	for _, tt := range tests {
		e, found := c.get("p", "u", testStart.Add(tt.at))
		if found != tt.wantFound || e.server != tt.wantServer {
			t.Errorf("get(u) at +%v = %q, %v; want %q, %v", tt.at, e.server, found, tt.wantServer, tt.wantFound)
		}
	}
	c.put("p", "v", "s1", testStart, time.Hour)
	c.remove("p", "v")
	if _, found := c.get("p", "v", testStart); found {
		t.Errorf("get(v) after remove found an entry")
	}
}

func TestErrorLogRateLimited(t *testing.T) {
	var buf bytes.Buffer
	s := New(nil, Options{Logger: zerolog.New(&buf)})
	for range 5 {
		s.logError(errors.New("boom"))
	}
	if got := strings.Count(buf.String(), "\n"); got != 1 {
		t.Fatalf("5 errors within %v logged %d lines; want 1:\n%s", errorLogInterval, got, buf.String())
	}
	s.lastLog = s.lastLog.Add(-errorLogInterval) // the interval has passed
	s.logError(errors.New("boom"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], `"suppressed":4`) || !strings.Contains(lines[1], `"component":"redis-store"`) {
		t.Errorf("log after the interval = %q; want a second line with suppressed 4 and the component", lines)
	}
}

func TestHitCache(t *testing.T) {
	srv := startRedis(t)
	const n = 50
	tests := []struct {
		name           string
		refresh        time.Duration
		wantRoundTrips uint64
	}{
		{"default interval", 0, 1},
		{"disabled", -1, n},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			s := New(srv.Client(), Options{Clock: clock.c.Now, RefreshInterval: tt.refresh})
			mustAssign(t, s, request("warm-up", "w")) // loads the script
			req := request(t.Name(), "u1")
			before := s.RoundTrips()
			first := mustAssign(t, s, req)
			for range n - 1 {
				clock.c.Advance(DefaultRefreshInterval / (2 * n)) // all within the interval
				if got, want := mustAssign(t, s, req), (store.Result{Outcome: store.OutcomeHit, Server: first.Server}); got != want {
					t.Fatalf("Assign = %+v; want %+v", got, want)
				}
			}
			if got := s.RoundTrips() - before; got != tt.wantRoundTrips {
				t.Errorf("%d calls within the refresh interval: %d round trips; want %d", n, got, tt.wantRoundTrips)
			}
			if got, want := s.CacheHits(), n-tt.wantRoundTrips; got != want {
				t.Errorf("CacheHits() = %d; want %d", got, want)
			}
		})
	}
}

// TestHitCacheGoesBackToRedis checks when a cached user is sent to Redis again.
func TestHitCacheGoesBackToRedis(t *testing.T) {
	srv := startRedis(t)
	tests := []struct {
		name           string
		after          time.Duration
		idle           time.Duration
		servers        []store.Server
		wantRoundTrips uint64
	}{
		{"within interval", DefaultRefreshInterval - 1, time.Hour, nil, 0},
		{"interval over", DefaultRefreshInterval, time.Hour, nil, 1},
		{"capped at half the idle time", 500 * time.Millisecond, time.Second, nil, 1},
		// Two: the script names the unlisted server, whose key the second call declares.
		{"server no longer listed", 0, time.Hour, []store.Server{{Name: "s3", Quota: 1, Accepting: true}}, 2},
		{"server draining: still cached", 0, time.Hour, []store.Server{{Name: "s1", Quota: 2}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			s := New(srv.Client(), Options{Clock: clock.c.Now})
			mustAssign(t, s, request("warm-up", "w")) // loads the script
			req := request(t.Name(), "u1")
			req.Idle = tt.idle
			mustAssign(t, s, req)
			clock.c.Advance(tt.after)
			if tt.servers != nil {
				req.Servers = tt.servers
			}
			before := s.RoundTrips()
			mustAssign(t, s, req)
			if got := s.RoundTrips() - before; got != tt.wantRoundTrips {
				t.Errorf("%d round trips; want %d", got, tt.wantRoundTrips)
			}
		})
	}
}

// refCache is the hit cache's semantics written plainly, for one shard: entries ordered by
// refresh, oldest first.
type refCache struct {
	max     int
	entries []refEntry
}

type refEntry struct {
	key, server     string
	refreshed, idle int64
}

func (r *refCache) find(key string) int {
	return slices.IndexFunc(r.entries, func(e refEntry) bool { return e.key == key })
}

func (r *refCache) sweep(now int64) {
	for range sweepLimit {
		if len(r.entries) == 0 || now-r.entries[0].refreshed < r.entries[0].idle {
			return
		}
		r.entries = r.entries[1:]
	}
}

func (r *refCache) get(key string, now int64) (refEntry, bool) {
	r.sweep(now)
	i := r.find(key)
	if i < 0 {
		return refEntry{}, false
	}
	if e := r.entries[i]; now-e.refreshed >= e.idle {
		r.entries = slices.Delete(r.entries, i, i+1)
		return refEntry{}, false
	}
	return r.entries[i], true
}

func (r *refCache) put(key, server string, refreshed, idle int64) {
	r.sweep(refreshed)
	if i := r.find(key); i >= 0 {
		if r.entries[i].refreshed > refreshed {
			return
		}
		r.entries = slices.Delete(r.entries, i, i+1)
	}
	r.entries = append(r.entries, refEntry{key, server, refreshed, idle})
	if len(r.entries) > r.max {
		r.entries = r.entries[1:]
	}
}

func (r *refCache) remove(key string) {
	if i := r.find(key); i >= 0 {
		r.entries = slices.Delete(r.entries, i, i+1)
	}
}

// TestHitCacheModel runs random operations on caches of one and of two shards and compares
// every answer and size with refCache, one per shard: same entries, same evictions, same
// sweeps. Keys of many lengths, many removals and expiries make the shards compact their key
// bytes and reuse slots.
func TestHitCacheModel(t *testing.T) {
	for _, max := range []int{50, 2 * 2 * minShardEntries} {
		t.Run(strconv.Itoa(max), func(t *testing.T) {
			c := newHitCache(max, testStart)
			refs := make(map[*cacheShard]*refCache)
			for i := range c.shards {
				refs[&c.shards[i]] = &refCache{max: c.shards[i].max}
			}
			if got := len(c.shards); max > 2*minShardEntries && got < 2 {
				t.Fatalf("newHitCache(%d) has %d shard; want several", max, got)
			}
			r := rand.New(rand.NewPCG(1, uint64(max)))
			users := 3 * max
			now := int64(0)
			for op := range 200_000 {
				pool := "pool" + strconv.Itoa(r.IntN(2))
				u := r.IntN(users)
				user := strconv.Itoa(u) + strings.Repeat("x", u%40)
				key := pool + "\x00" + user
				ref := refs[c.shard(c.hash(pool, user))]
				now += int64(r.IntN(3))
				at := testStart.Add(time.Duration(now))
				switch k := r.IntN(10); {
				case k < 5:
					got, found := c.get(pool, user, at)
					want, wantFound := ref.get(key, now)
					if found != wantFound || found && (got.server != want.server || got.refreshed != testStart.Add(time.Duration(want.refreshed)) ||
						got.idle != time.Duration(want.idle)) {
						t.Fatalf("op %d: get(%q, %q) = %+v, %v; want %+v, %v", op, pool, user, got, found, want, wantFound)
					}
				case k < 9:
					refreshed := now - int64(r.IntN(5)) // a call that started a little earlier
					idle := []int64{20, 100, 1000}[r.IntN(3)]
					server := "s" + strconv.Itoa(r.IntN(3))
					c.put(pool, user, server, testStart.Add(time.Duration(refreshed)), time.Duration(idle))
					ref.put(key, server, refreshed, idle)
				default:
					c.remove(pool, user)
					ref.remove(key)
				}
				if op%100 == 0 {
					want := 0
					for _, ref := range refs {
						want += len(ref.entries)
					}
					if got := c.len(); got != want {
						t.Fatalf("op %d: len() = %d; want %d", op, got, want)
					}
				}
			}
		})
	}
}

// TestHitCacheSharesAddUp checks that a sharded cache holds exactly max entries when full.
func TestHitCacheSharesAddUp(t *testing.T) {
	const max = DefaultCacheSize
	c := newHitCache(max, testStart)
	if len(c.shards) != maxCacheShards {
		t.Errorf("newHitCache(%d) has %d shards; want %d", max, len(c.shards), maxCacheShards)
	}
	for i := range 3 * max {
		c.put("p", "u"+strconv.Itoa(i), "s1", testStart, time.Hour)
	}
	if got := c.len(); got != max {
		t.Errorf("len() after %d puts = %d; want %d", 3*max, got, max)
	}
	for i := 3*max - 100; i < 3*max; i++ {
		if _, found := c.get("p", "u"+strconv.Itoa(i), testStart); !found {
			t.Errorf("get(u%d), one of the last 100 put, found nothing", i)
		}
	}
}

// TestHitCacheSameHash checks that keys sharing a hash keep their own entries.
func TestHitCacheSameHash(t *testing.T) {
	c := newHitCache(10, testStart)
	sh := &c.shards[0]
	const h = 42
	sh.put(h, "p", "a", "s1", 0, 100)
	sh.put(h, "p", "b", "s2", 0, 100)
	sh.put(h, "q", "a", "s3", 0, 100)
	for _, tt := range []struct{ pool, key, want string }{{"p", "a", "s1"}, {"p", "b", "s2"}, {"q", "a", "s3"}} {
		if _, got, found := sh.get(h, tt.pool, tt.key, 1); !found || got != tt.want {
			t.Errorf("get(%q, %q) = %q, %v; want %q", tt.pool, tt.key, got, found, tt.want)
		}
	}
	if i := sh.lookup(h, "p", "a"); i >= 0 {
		sh.drop(i)
	}
	if _, got, found := sh.get(h, "p", "b", 1); !found || got != "s2" {
		t.Errorf("get(p, b) after removing (p, a) = %q, %v; want s2", got, found)
	}
}

// TestHitCacheServerNames checks the bound on a shard's server names: names no entry uses
// are dropped when it is reached, and an entry for yet another server is not cached.
func TestHitCacheServerNames(t *testing.T) {
	c := newHitCache(1, testStart)
	sh := &c.shards[0]
	sh.max = maxShardServers + 10
	server := func(i int) string { return "srv-" + strconv.Itoa(i) }
	// Each user on a server of its own; removing most of them leaves their names unused.
	for i := range maxShardServers {
		sh.put(uint64(i), "p", "u"+strconv.Itoa(i), server(i), 0, 100)
		if i%2 == 1 {
			sh.drop(sh.lookup(uint64(i), "p", "u"+strconv.Itoa(i)))
		}
	}
	sh.put(1<<40, "p", "new", server(-1), 0, 100) // full: odd servers' names go
	if got, want := len(sh.servers), maxShardServers/2+1; got != want {
		t.Errorf("%d server names after the renumbering; want %d", got, want)
	}
	for i := 0; i < maxShardServers; i += 2 {
		if _, got, found := sh.get(uint64(i), "p", "u"+strconv.Itoa(i), 1); !found || got != server(i) {
			t.Fatalf("get(u%d) after the renumbering = %q, %v; want %q", i, got, found, server(i))
		}
	}
	for i := maxShardServers; len(sh.servers) < maxShardServers; i++ {
		sh.put(uint64(i), "p", "u"+strconv.Itoa(i), server(i), 0, 100)
	}
	sh.put(1<<41, "p", "one-too-many", server(-2), 0, 100)
	if _, _, found := sh.get(1<<41, "p", "one-too-many", 1); found {
		t.Errorf("an entry naming server %d of a shard was cached; want none beyond %d", maxShardServers+1, maxShardServers)
	}
}

// TestSlotIndex runs random inserts and deletes of hashes crowded into a few home positions,
// so that probe runs wrap around the table and deletions shift entries back, and checks
// after each that exactly the live entries are found.
func TestSlotIndex(t *testing.T) {
	var x slotIndex
	live := make(map[int32]uint64) // slot → hash
	r := rand.New(rand.NewPCG(2, 3))
	find := func(h uint64, slot int32) bool {
		mask := len(x.table) - 1
		for p := x.home(uint64(uint32(h))); x.table[p] != 0; p = (p + 1) & mask {
			if x.table[p] == indexEntry(h, slot) {
				return true
			}
		}
		return false
	}
	next := int32(0)
	for op := range 20_000 {
		if len(live) > 0 && r.IntN(2) == 0 {
			for slot, h := range live {
				x.delete(h, slot)
				delete(live, slot)
				if find(h, slot) {
					t.Fatalf("op %d: slot %d found after its deletion", op, slot)
				}
				break
			}
		} else if len(live) < 200 {
			// Low bits crowd the last positions; the high bits tell the entries apart.
			h := uint64(r.Uint32())<<32 | uint64(len(x.table)-1-r.IntN(3))&0xffff
			x.insert(h, next)
			live[next] = h
			next++
		}
		if x.n != len(live) {
			t.Fatalf("op %d: n = %d; want %d", op, x.n, len(live))
		}
		for slot, h := range live {
			if !find(h, slot) {
				t.Fatalf("op %d: slot %d (hash %#x) not found", op, slot, h)
			}
		}
	}
}
