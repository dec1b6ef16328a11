package redis

import (
	"container/list"
	"sync"
	"time"
)

// sweepLimit bounds how many stale entries one cache access reclaims.
const sweepLimit = 8

// hitCache remembers, per pool and user, the seat the agent last saw refreshed in Redis. It is
// bounded twice: entries die when the seat they describe has expired (reclaimed a few at a time
// from the oldest end on every access, whatever the key), and the oldest are evicted beyond max.
type hitCache struct {
	mu      sync.Mutex
	max     int
	entries map[string]*list.Element // values are *cacheEntry
	order   list.List                // oldest refresh first
}

// cacheEntry describes a seat as of its last Redis refresh.
type cacheEntry struct {
	key    string
	server string
	// refreshed is the agent time just before the call that refreshed the seat, so the real
	// refresh happened at or after it: refreshed+idle never overstates the seat's life.
	refreshed time.Time
	idle      time.Duration
}

func (e *cacheEntry) expired(now time.Time) bool {
	return !now.Before(e.refreshed.Add(e.idle))
}

func newHitCache(max int) *hitCache {
	return &hitCache{max: max, entries: make(map[string]*list.Element)}
}

// get returns a copy of the live entry for key.
func (c *hitCache) get(key string, now time.Time) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweep(now)
	el, ok := c.entries[key]
	if !ok {
		return cacheEntry{}, false
	}
	e := el.Value.(*cacheEntry)
	if e.expired(now) {
		c.drop(el)
		return cacheEntry{}, false
	}
	return *e, true
}

// put records a seat refreshed in Redis by a call that started at refreshed. Of two calls for
// the same user finishing out of order, the one started later wins: its refresh is the later
// lower bound.
func (c *hitCache) put(key, server string, refreshed time.Time, idle time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweep(refreshed)
	if el, ok := c.entries[key]; ok {
		e := el.Value.(*cacheEntry)
		if e.refreshed.After(refreshed) {
			return
		}
		e.server, e.refreshed, e.idle = server, refreshed, idle
		c.order.MoveToBack(el)
		return
	}
	c.entries[key] = c.order.PushBack(&cacheEntry{key: key, server: server, refreshed: refreshed, idle: idle})
	for c.order.Len() > c.max {
		c.drop(c.order.Front())
	}
}

// remove forgets key (the user holds no seat any more).
func (c *hitCache) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		c.drop(el)
	}
}

// len returns the number of entries, expired or not.
func (c *hitCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// sweep reclaims up to sweepLimit expired entries from the oldest end. Entries are ordered by
// refresh, not by expiry (idle times may differ between pools), so it stops at the first live
// one; the size cap bounds whatever it leaves behind.
func (c *hitCache) sweep(now time.Time) {
	for range sweepLimit {
		el := c.order.Front()
		if el == nil || !el.Value.(*cacheEntry).expired(now) {
			return
		}
		c.drop(el)
	}
}

func (c *hitCache) drop(el *list.Element) {
	delete(c.entries, el.Value.(*cacheEntry).key)
	c.order.Remove(el)
}
