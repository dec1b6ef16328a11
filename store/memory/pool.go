package memory

import (
	"math/bits"
	"strings"
	"sync"
	"time"

	"github.com/stickyseat/stickyseat/store"
)

// shrinkMin is the peak number of seats below which a pool never rebuilds its seats: small
// pools cost little, and rebuilding them would only churn.
const shrinkMin = 4096

// shrinkMax is the number of live seats above which a pool does not rebuild its seats: a
// rebuild copies every live seat under the pool's lock (about 5 ms at this size, 190 ms at
// 1M on the machine of the README's numbers), so a pool that is still large keeps its slab
// and table at their peak size until it shrinks below this. The arena gives memory back on
// its own, chunk by chunk. Tests lower it.
var shrinkMax = 1 << 16

// pool holds the seats of one pool. All fields are guarded by mu.
type pool struct {
	mu sync.Mutex

	seatSet
	// idle is the idle time of the latest request, the one Sweep applies.
	idle int64
	// changes counts the requests and evictions that changed the pool, so a periodic save
	// can skip a store nothing touched.
	changes uint64
	// peak is the largest number of seats since the seats were last rebuilt; the slab and
	// the table only grow, so the pool rebuilds them once most of the peak has expired.
	peak int

	// names interns the server names seats refer to; used counts the live seats on each.
	// A name whose count drops to zero is forgotten and its index reused, so servers removed
	// from the configuration cost nothing once their seats are gone.
	names     []string
	used      []int
	index     map[string]uint32
	freeNames []uint32

	// line is the pool's waiting line; nil while the pool's requests have the line off.
	line *line
}

func newPool() *pool {
	return &pool{
		seatSet: newSeatSet(0, seededHash()),
		index:   make(map[string]uint32),
	}
}

// assign applies the semantics of store.Request at time now (nanoseconds since the epoch).
func (p *pool) assign(req store.Request, now int64) store.Result {
	p.idle = int64(req.Idle)
	p.changes++
	p.expire(now)

	fp := p.hash(req.Key)
	var previous string
	if i := p.find(req.Key, fp); i != 0 {
		name := p.names[p.slab.at(i).server]
		if req.Lists(name) {
			p.unlink(i)
			p.pushBack(i, now)
			return store.Result{Outcome: store.OutcomeHit, Server: name}
		}
		previous = name
		p.remove(i)
	}

	var waited time.Duration
	if req.Queue.On() {
		res, w, seat := p.queue(req, now, previous)
		if !seat {
			return res
		}
		waited = w
	} else {
		p.line = nil // the line was turned off: its places go with it
	}
	c := p.choose(req.Servers)
	if c < 0 {
		return store.Result{Outcome: store.OutcomeFull, Previous: previous}
	}
	idx := p.intern(req.Servers[c].Name)
	p.used[idx]++
	p.pushBack(p.add(req.Key, fp, idx), now)
	p.peak = max(p.peak, p.count)

	outcome := store.OutcomeNew
	if previous != "" {
		outcome = store.OutcomeMoved
	}
	return store.Result{Outcome: outcome, Server: p.names[idx], Previous: previous, Waited: waited}
}

// choose returns the index in servers of the accepting server with room and the lowest
// used/quota, the earliest on ties, or -1 when none has room.
func (p *pool) choose(servers []store.Server) int {
	best, bestUsed, bestQuota := -1, 0, 0
	for i, sv := range servers {
		if !sv.Accepting {
			continue
		}
		used := p.usedOn(sv.Name)
		if used >= sv.Quota {
			continue
		}
		if best < 0 || lessRatio(used, sv.Quota, bestUsed, bestQuota) {
			best, bestUsed, bestQuota = i, used, sv.Quota
		}
	}
	return best
}

// lessRatio reports whether u1/q1 < u2/q2 for non-negative counts and positive quotas. It
// cross-multiplies in 128 bits: exact, and no product of two ints can overflow.
func lessRatio(u1, q1, u2, q2 int) bool {
	hi1, lo1 := bits.Mul64(uint64(u1), uint64(q2))
	hi2, lo2 := bits.Mul64(uint64(u2), uint64(q1))
	return hi1 < hi2 || hi1 == hi2 && lo1 < lo2
}

// usedOn returns the live seats on the named server.
func (p *pool) usedOn(name string) int {
	if idx, ok := p.index[name]; ok {
		return p.used[idx]
	}
	return 0
}

// intern returns the index of the named server, adding it if needed.
func (p *pool) intern(name string) uint32 {
	if idx, ok := p.index[name]; ok {
		return idx
	}
	name = strings.Clone(name)
	var idx uint32
	if n := len(p.freeNames); n > 0 {
		idx = p.freeNames[n-1]
		p.freeNames = p.freeNames[:n-1]
		p.names[idx] = name
		p.used[idx] = 0
	} else {
		idx = uint32(len(p.names))
		p.names = append(p.names, name)
		p.used = append(p.used, 0)
	}
	p.index[name] = idx
	return idx
}

// release frees one seat on server idx, forgetting the server when it holds none.
func (p *pool) release(idx uint32) {
	p.used[idx]--
	if p.used[idx] > 0 {
		return
	}
	delete(p.index, p.names[idx])
	p.names[idx] = ""
	p.freeNames = append(p.freeNames, idx)
}

// remove deletes seat i from the pool and frees its slot.
func (p *pool) remove(i uint32) {
	server := p.slab.at(i).server
	p.drop(i)
	p.release(server)
}

// expire removes every seat whose idle time has run out at now: a seat seen at t is expired
// from t+idle on. The list is in last-seen order, so the expired seats are a prefix of it.
func (p *pool) expire(now int64) {
	if p.idle <= 0 {
		return
	}
	removed := false
	for i := p.head; i != 0 && now-p.slab.at(i).lastSeen >= p.idle; i = p.head {
		p.remove(i)
		removed = true
	}
	if !removed {
		return
	}
	// A rebuild costs O(live seats) and runs only after three quarters of the peak were
	// deleted, so it is O(1) amortized per deleted seat; and only below shrinkMax live
	// seats, so that it stays short.
	if p.peak >= shrinkMin && p.count <= p.peak/4 && p.count <= shrinkMax {
		p.rebuild()
		p.peak = p.count
		return
	}
}
