package redis

import (
	"hash/maphash"
	"math"
	"math/bits"
	"sync"
	"time"
)

// sweepLimit bounds how many stale entries one cache access reclaims.
const sweepLimit = 8

// Sharding: decisions on different users rarely share a lock. A cache too small to give
// every shard minShardEntries keeps fewer shards, down to one, where eviction is strictly
// oldest first.
const (
	maxCacheShards  = 64
	minShardEntries = 1024
)

// maxShardServers bounds the server names a shard keeps (entries name their server by
// number). Configurations name far fewer; past it, unused names are dropped, and an entry
// for yet another server is not cached.
const maxShardServers = 1 << 12

// minGarbage is how many bytes of dead keys a shard tolerates before compacting its key
// bytes; beyond it, it compacts once they are half of all.
const minGarbage = 4096

// hitCache remembers, per pool and user, the seat the agent last saw refreshed in Redis. It is
// split into shards by key; each shard is bounded twice: entries die when the seat they
// describe has expired (reclaimed a few at a time from the shard's oldest end on every access
// to the shard, whatever the key), and the shard's oldest are evicted beyond its share of
// max. The shares add up to max.
//
// Most look-ups miss when there are many more users than max, so a miss must cost next to
// nothing: entries hold no pointers (the garbage collector never scans them) and keys are
// hashed from pool and user without building a string; a shard keeps the key bytes in one
// slice, to check a hash match against.
type hitCache struct {
	seed   maphash.Seed
	base   time.Time // entry times are kept as nanoseconds since base
	shift  uint      // the hash's top bits choose the shard
	shards []cacheShard
}

// cacheEntry describes a seat as of its last Redis refresh.
type cacheEntry struct {
	server string
	// refreshed is the agent time just before the call that refreshed the seat, so the real
	// refresh happened at or after it: refreshed+idle never overstates the seat's life.
	refreshed time.Time
	idle      time.Duration
}

// cacheShard is one shard: a hash index over slots linked from oldest to newest refresh.
type cacheShard struct {
	mu      sync.Mutex
	max     int
	n       int
	index   slotIndex
	slots   []cacheSlot
	free    int32 // first free slot, linked by next; -1: none
	oldest  int32 // -1: empty
	newest  int32
	keys    []byte // pool and user of every slot, back to back
	garbage int    // bytes of keys no slot refers to
	servers []string
	ids     map[string]uint16 // index in servers
	_       [64]byte          // keeps the next shard's lock off this shard's cache lines
}

// cacheSlot is one entry, free of pointers. Times are nanoseconds since the cache's base.
type cacheSlot struct {
	hash       uint64
	refreshed  int64
	idle       int64
	keyAt      uint32 // pool at keys[keyAt:], then the user
	poolLen    uint32
	keyLen     uint32
	server     uint16
	prev, next int32 // towards oldest, towards newest; -1: none
}

func (e *cacheSlot) expired(now int64) bool { return now-e.refreshed >= e.idle }

// newHitCache returns a cache of at most max entries. Entry times are kept relative to base
// (the store's clock now), with time.Time's own arithmetic: monotonic when both times carry
// a monotonic reading, as time.Now's do.
func newHitCache(max int, base time.Time) *hitCache {
	shards := 1
	for shards < maxCacheShards && 2*shards*minShardEntries <= max {
		shards *= 2
	}
	c := &hitCache{seed: maphash.MakeSeed(), base: base, shift: uint(64 - bits.TrailingZeros(uint(shards))),
		shards: make([]cacheShard, shards)}
	for i := range c.shards {
		sh := &c.shards[i]
		sh.max = max / shards
		if i < max%shards {
			sh.max++
		}
		sh.max = min(sh.max, math.MaxInt32)
		sh.ids = make(map[string]uint16)
		sh.free, sh.oldest, sh.newest = -1, -1, -1
	}
	return c
}

func (c *hitCache) hash(pool, key string) uint64 {
	return maphash.String(c.seed, key) ^ bits.RotateLeft64(maphash.String(c.seed, pool), 31)
}

func (c *hitCache) shard(h uint64) *cacheShard {
	if c.shift == 64 {
		return &c.shards[0]
	}
	return &c.shards[h>>c.shift]
}

func (c *hitCache) offset(t time.Time) int64 { return int64(t.Sub(c.base)) }

// get returns a copy of the live entry for the user key in pool.
func (c *hitCache) get(pool, key string, now time.Time) (cacheEntry, bool) {
	h := c.hash(pool, key)
	sh := c.shard(h)
	sh.mu.Lock()
	e, server, ok := sh.get(h, pool, key, c.offset(now))
	sh.mu.Unlock()
	if !ok {
		return cacheEntry{}, false
	}
	return cacheEntry{server: server, refreshed: c.base.Add(time.Duration(e.refreshed)), idle: time.Duration(e.idle)}, true
}

// put records a seat refreshed in Redis by a call that started at refreshed. Of two calls for
// the same user finishing out of order, the one started later wins: its refresh is the later
// lower bound.
func (c *hitCache) put(pool, key, server string, refreshed time.Time, idle time.Duration) {
	h := c.hash(pool, key)
	sh := c.shard(h)
	sh.mu.Lock()
	sh.put(h, pool, key, server, c.offset(refreshed), idle)
	sh.mu.Unlock()
}

// remove forgets the user key in pool (the user holds no seat any more).
func (c *hitCache) remove(pool, key string) {
	h := c.hash(pool, key)
	sh := c.shard(h)
	sh.mu.Lock()
	if i := sh.lookup(h, pool, key); i >= 0 {
		sh.drop(i)
	}
	sh.mu.Unlock()
}

// len returns the number of entries, expired or not.
func (c *hitCache) len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		n += sh.n
		sh.mu.Unlock()
	}
	return n
}

// The shard's methods below run with sh.mu held; h is the key's hash.

// get returns the live entry of the key and its server's name.
func (sh *cacheShard) get(h uint64, pool, key string, now int64) (cacheSlot, string, bool) {
	sh.sweep(now)
	i := sh.lookup(h, pool, key)
	if i < 0 {
		return cacheSlot{}, "", false
	}
	e := sh.slots[i]
	if e.expired(now) {
		sh.drop(i)
		return cacheSlot{}, "", false
	}
	return e, sh.servers[e.server], true
}

func (sh *cacheShard) put(h uint64, pool, key, server string, refreshed int64, idle time.Duration) {
	sh.sweep(refreshed)
	if i := sh.lookup(h, pool, key); i >= 0 {
		sh.update(i, server, refreshed, idle)
		return
	}
	if uint64(len(sh.keys))+uint64(len(pool))+uint64(len(key)) > math.MaxUint32 {
		return
	}
	id, ok := sh.serverID(server)
	if !ok {
		return
	}
	if sh.n >= sh.max {
		sh.drop(sh.oldest) // its slot, just touched, takes the new entry
	}
	i := sh.free
	if i >= 0 {
		sh.free = sh.slots[i].next
	} else {
		i = int32(len(sh.slots))
		sh.slots = append(sh.slots, cacheSlot{})
	}
	sh.slots[i] = cacheSlot{hash: h, refreshed: refreshed, idle: int64(idle), keyAt: uint32(len(sh.keys)),
		poolLen: uint32(len(pool)), keyLen: uint32(len(key)), server: id}
	sh.keys = append(append(sh.keys, pool...), key...)
	sh.link(i)
	sh.index.insert(h, i)
	sh.n++
}

// update refreshes slot i unless it holds a later refresh already.
func (sh *cacheShard) update(i int32, server string, refreshed int64, idle time.Duration) {
	if sh.slots[i].refreshed > refreshed {
		return
	}
	id, ok := sh.serverID(server)
	if !ok {
		sh.drop(i)
		return
	}
	e := &sh.slots[i]
	e.server, e.refreshed, e.idle = id, refreshed, int64(idle)
	sh.unlink(i)
	sh.link(i)
}

// holds reports whether slot i is the entry of key in pool, not another key with its hash.
func (sh *cacheShard) holds(i int32, pool, key string) bool {
	e := &sh.slots[i]
	at, mid, end := e.keyAt, e.keyAt+e.poolLen, e.keyAt+e.poolLen+e.keyLen
	return string(sh.keys[at:mid]) == pool && string(sh.keys[mid:end]) == key
}

// sweep reclaims up to sweepLimit expired entries from the oldest end. Entries are ordered by
// refresh, not by expiry (idle times may differ between pools), so it stops at the first live
// one; the size cap bounds whatever it leaves behind.
func (sh *cacheShard) sweep(now int64) {
	for range sweepLimit {
		if sh.oldest < 0 || !sh.slots[sh.oldest].expired(now) {
			return
		}
		sh.drop(sh.oldest)
	}
}

// link makes slot i the newest.
func (sh *cacheShard) link(i int32) {
	e := &sh.slots[i]
	e.prev, e.next = sh.newest, -1
	if sh.newest >= 0 {
		sh.slots[sh.newest].next = i
	} else {
		sh.oldest = i
	}
	sh.newest = i
}

func (sh *cacheShard) unlink(i int32) {
	e := &sh.slots[i]
	if e.prev >= 0 {
		sh.slots[e.prev].next = e.next
	} else {
		sh.oldest = e.next
	}
	if e.next >= 0 {
		sh.slots[e.next].prev = e.prev
	} else {
		sh.newest = e.prev
	}
}

// drop removes slot i and frees it.
func (sh *cacheShard) drop(i int32) {
	sh.unlink(i)
	e := &sh.slots[i]
	sh.index.delete(e.hash, i)
	sh.garbage += int(e.poolLen + e.keyLen)
	*e = cacheSlot{next: sh.free}
	sh.free = i
	sh.n--
	if sh.garbage > minGarbage && 2*sh.garbage > len(sh.keys) {
		sh.compact()
	}
}

// compact copies the live keys into a new slice, oldest first.
func (sh *cacheShard) compact() {
	keys := make([]byte, 0, 2*(len(sh.keys)-sh.garbage))
	for i := sh.oldest; i >= 0; i = sh.slots[i].next {
		e := &sh.slots[i]
		at := uint32(len(keys))
		keys = append(keys, sh.keys[e.keyAt:e.keyAt+e.poolLen+e.keyLen]...)
		e.keyAt = at
	}
	sh.keys, sh.garbage = keys, 0
}

// serverID returns the number of server, adding it to the shard's names. When they are
// full, the names no entry uses are dropped first; false means there is no room still.
func (sh *cacheShard) serverID(server string) (uint16, bool) {
	if id, ok := sh.ids[server]; ok {
		return id, true
	}
	if len(sh.servers) >= maxShardServers {
		sh.renumberServers()
		if len(sh.servers) >= maxShardServers {
			return 0, false
		}
	}
	id := uint16(len(sh.servers))
	sh.servers = append(sh.servers, server)
	sh.ids[server] = id
	return id, true
}

// renumberServers keeps only the server names that entries use.
func (sh *cacheShard) renumberServers() {
	renumbered := make(map[uint16]uint16)
	var servers []string
	for i := sh.oldest; i >= 0; i = sh.slots[i].next {
		e := &sh.slots[i]
		id, ok := renumbered[e.server]
		if !ok {
			id = uint16(len(servers))
			renumbered[e.server] = id
			servers = append(servers, sh.servers[e.server])
		}
		e.server = id
	}
	sh.servers = servers
	sh.ids = make(map[string]uint16, len(servers))
	for id, name := range servers {
		sh.ids[name] = uint16(id)
	}
}
