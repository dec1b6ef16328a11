package memory

import (
	"math/bits"
	"strings"
	"sync"

	"github.com/stickyseat/stickyseat/store"
)

// shrinkMin is the map size below which a pool never rebuilds its seat map: small maps cost
// little, and rebuilding them would only churn.
const shrinkMin = 4096

// seat is one user's seat. It is kept small because a pool may hold millions: the server is
// an index into the pool's interned names and last-seen is plain nanoseconds.
type seat struct {
	prev, next *seat
	key        string
	lastSeen   int64  // nanoseconds since Store.epoch
	server     uint32 // index into pool.names
}

// pool holds the seats of one pool. All fields are guarded by mu.
type pool struct {
	mu sync.Mutex

	seats map[string]*seat
	// head is the least recently seen seat, tail the most recent: expiry pops from the head,
	// a refresh moves a seat to the tail.
	head, tail *seat
	// idle is the idle time of the latest request, the one Sweep applies.
	idle int64
	// changes counts the requests and evictions that changed the pool, so a periodic save
	// can skip a store nothing touched.
	changes uint64
	// peak is the largest len(seats) since the map was last built; Go maps never shrink, so
	// the pool rebuilds its map once most of the peak has expired.
	peak int

	// names interns the server names seats refer to; used counts the live seats on each.
	// A name whose count drops to zero is forgotten and its index reused, so servers removed
	// from the configuration cost nothing once their seats are gone.
	names []string
	used  []int
	index map[string]uint32
	free  []uint32
}

func newPool() *pool {
	return &pool{
		seats: make(map[string]*seat),
		index: make(map[string]uint32),
	}
}

// assign applies the semantics of store.Request at time now (nanoseconds since the epoch).
func (p *pool) assign(req store.Request, now int64) store.Result {
	p.idle = int64(req.Idle)
	p.changes++
	p.expire(now)

	var previous string
	if st, ok := p.seats[req.Key]; ok {
		name := p.names[st.server]
		if listed(req.Servers, name) {
			p.unlink(st)
			p.pushBack(st, now)
			return store.Result{Outcome: store.OutcomeHit, Server: name}
		}
		previous = name
		p.remove(st)
	}

	i := p.choose(req.Servers)
	if i < 0 {
		return store.Result{Outcome: store.OutcomeFull, Previous: previous}
	}
	idx := p.intern(req.Servers[i].Name)
	p.used[idx]++
	// The seat outlives the request: do not keep the caller's string alive.
	st := &seat{key: strings.Clone(req.Key), server: idx}
	p.seats[st.key] = st
	p.peak = max(p.peak, len(p.seats))
	p.pushBack(st, now)

	outcome := store.OutcomeNew
	if previous != "" {
		outcome = store.OutcomeMoved
	}
	return store.Result{Outcome: outcome, Server: p.names[idx], Previous: previous}
}

// listed reports whether name is one of servers.
func listed(servers []store.Server, name string) bool {
	for _, sv := range servers {
		if sv.Name == name {
			return true
		}
	}
	return false
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
	if n := len(p.free); n > 0 {
		idx = p.free[n-1]
		p.free = p.free[:n-1]
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
	p.free = append(p.free, idx)
}

// remove deletes a seat from the pool and frees its slot.
func (p *pool) remove(st *seat) {
	p.unlink(st)
	delete(p.seats, st.key)
	p.release(st.server)
}

// expire removes every seat whose idle time has run out at now: a seat seen at t is expired
// from t+idle on. The list is in last-seen order, so the expired seats are a prefix of it.
func (p *pool) expire(now int64) {
	if p.idle <= 0 {
		return
	}
	removed := false
	for st := p.head; st != nil && now-st.lastSeen >= p.idle; st = p.head {
		p.remove(st)
		removed = true
	}
	if removed && p.peak >= shrinkMin && len(p.seats) <= p.peak/4 {
		p.rebuild()
	}
}

// rebuild copies the live seats into a right-sized map. It costs O(live seats) and runs only
// after three quarters of the peak were deleted, so it is O(1) amortized per deleted seat.
func (p *pool) rebuild() {
	seats := make(map[string]*seat, len(p.seats))
	for key, st := range p.seats {
		seats[key] = st
	}
	p.seats = seats
	p.peak = len(seats)
}

// pushBack appends a seat seen at now to the tail of the list. A clock that steps back is
// clamped to the tail's last-seen so that the list stays ordered.
func (p *pool) pushBack(st *seat, now int64) {
	if p.tail != nil && now < p.tail.lastSeen {
		now = p.tail.lastSeen
	}
	st.lastSeen = now
	st.prev, st.next = p.tail, nil
	if p.tail != nil {
		p.tail.next = st
	} else {
		p.head = st
	}
	p.tail = st
}

// unlink takes a seat out of the list.
func (p *pool) unlink(st *seat) {
	if st.prev != nil {
		st.prev.next = st.next
	} else {
		p.head = st.next
	}
	if st.next != nil {
		st.next.prev = st.prev
	} else {
		p.tail = st.prev
	}
	st.prev, st.next = nil, nil
}
