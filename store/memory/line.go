package memory

import (
	"strings"
	"time"

	"github.com/stickyseat/stickyseat/store"
)

// line is a pool's waiting line (see store.Queue). It keeps two orders over the same places:
// join order, for positions, as tickets counted by a Fenwick tree (a place's position is the
// number of live tickets up to its own: O(log n)); and last-asked order, for lapses, as a
// list in which asking moves a place to the back, so the lapsed places are a prefix (O(1)
// each). Tickets only grow; when they run out of room the live ones are renumbered in order
// (O(n), once per n joins at least: amortized O(1)).
type line struct {
	places map[string]*place
	// byTicket[t] is the place holding ticket t, nil once it left; fen counts them.
	byTicket []*place
	fen      fenwick
	next     int // the next ticket to hand out
	// first is at or before the lowest live ticket: inspection starts there, so listing the
	// head skips the places that left long ago only once.
	first int

	// head is the place asked for least recently, tail most recently.
	head, tail *place

	// lapsed counts the places that lapsed since the store began.
	lapsed uint64
	// lastAdmit is when the line last seated someone (0: never); interval the smoothed
	// time between two such seats, in µs (0: unknown).
	lastAdmit int64
	interval  int64
}

// place is one user's place in a line.
type place struct {
	key           string
	ticket        int
	joined, asked int64 // nanoseconds since Store.epoch
	prev, next    *place
}

// minTickets is the initial room for tickets.
const minTickets = 64

func newLine() *line {
	return &line{places: make(map[string]*place), byTicket: make([]*place, minTickets), fen: newFenwick(minTickets)}
}

// len is the number of places held.
func (l *line) len() int { return len(l.places) }

// position is p's place, 1 for the head.
func (l *line) position(p *place) int { return l.fen.prefix(p.ticket) }

// join adds key at the back of the line at time now.
func (l *line) join(key string, now int64) *place {
	if l.next == len(l.byTicket) {
		l.renumber()
	}
	p := &place{key: strings.Clone(key), ticket: l.next, joined: now, asked: now}
	l.next++
	l.byTicket[p.ticket] = p
	l.fen.add(p.ticket, 1)
	l.places[p.key] = p
	l.pushBack(p)
	return p
}

// ask records that p's user asked at now.
func (l *line) ask(p *place, now int64) {
	p.asked = now
	l.unlink(p)
	l.pushBack(p)
}

// headTickets calls f with the live places in join order from the head, until f returns false.
func (l *line) headTickets(f func(*place) bool) {
	for l.first < l.next && l.byTicket[l.first] == nil {
		l.first++
	}
	for t := l.first; t < l.next; t++ {
		if p := l.byTicket[t]; p != nil && !f(p) {
			return
		}
	}
}

// leave removes p from the line.
func (l *line) leave(p *place) {
	l.unlink(p)
	l.fen.add(p.ticket, -1)
	l.byTicket[p.ticket] = nil
	delete(l.places, p.key)
}

// lapse removes the places not asked for within timeout of now, at most store.LapseLimit of
// them (the Redis store's bound, kept here so that both answer alike): a place asked for at t
// is held before t+timeout and lapsed from t+timeout on.
func (l *line) lapse(now int64, timeout time.Duration) {
	for n := 0; n < store.LapseLimit && l.head != nil && now-l.head.asked >= int64(timeout); n++ {
		l.leave(l.head)
		l.lapsed++
	}
}

// admitted records that the line seated someone at now, for the wait estimate.
func (l *line) admitted(now int64) {
	if l.lastAdmit != 0 {
		gap := (now - l.lastAdmit) / int64(time.Microsecond)
		l.interval = smoothInterval(l.interval, gap)
	}
	l.lastAdmit = now
}

// smoothInterval folds gap into the smoothed interval (both µs; 0 is unknown) with weight
// 3/10, in integers so that the memory and Redis stores compute the same estimate.
func smoothInterval(interval, gap int64) int64 {
	if interval == 0 {
		return gap
	}
	return (7*interval + 3*gap) / 10
}

// wait is the estimated time until the user at position is seated; 0 when unknown.
func (l *line) wait(position int) time.Duration {
	return time.Duration(l.interval*int64(position)) * time.Microsecond
}

// renumber gives the live places tickets 0..n-1 in join order, with room for as many again.
func (l *line) renumber() {
	n := len(l.places)
	size := max(minTickets, 2*n)
	byTicket := make([]*place, size)
	fen := newFenwick(size)
	t := 0
	for _, p := range l.byTicket[:l.next] {
		if p == nil {
			continue
		}
		p.ticket = t
		byTicket[t] = p
		fen.add(t, 1)
		t++
	}
	l.byTicket, l.fen, l.next, l.first = byTicket, fen, t, 0
}

func (l *line) pushBack(p *place) {
	p.prev, p.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = p
	} else {
		l.head = p
	}
	l.tail = p
}

func (l *line) unlink(p *place) {
	if p.prev != nil {
		p.prev.next = p.next
	} else {
		l.head = p.next
	}
	if p.next != nil {
		p.next.prev = p.prev
	} else {
		l.tail = p.prev
	}
	p.prev, p.next = nil, nil
}

// fenwick is a binary indexed tree of counts over 0..n-1.
type fenwick []int32

func newFenwick(n int) fenwick { return make(fenwick, n+1) }

// add adds d at index i.
func (f fenwick) add(i int, d int32) {
	for i++; i < len(f); i += i & -i {
		f[i] += d
	}
}

// prefix returns the sum over 0..i.
func (f fenwick) prefix(i int) int {
	s := int32(0)
	for i++; i > 0; i -= i & -i {
		s += f[i]
	}
	return int(s)
}

// freeSeats is the number of seats the accepting servers of req can still grant.
func (p *pool) freeSeats(servers []store.Server) int {
	n := 0
	for _, sv := range servers {
		if sv.Accepting {
			n += max(0, sv.Quota-p.usedOn(sv.Name))
		}
	}
	return n
}

// queue applies the line's admission rule to a user who holds no seat; previous is the seat
// just released, if any. It returns the answer and false when the user must not be seated
// now, or the time they waited and true when they may take a seat (from the line or not).
func (p *pool) queue(req store.Request, now int64, previous string) (store.Result, time.Duration, bool) {
	if p.line == nil {
		p.line = newLine()
	}
	l := p.line
	l.lapse(now, req.Queue.Timeout)
	free := p.freeSeats(req.Servers)
	if pl := l.places[req.Key]; pl != nil {
		pos := l.position(pl)
		if free >= pos {
			waited := time.Duration(now - pl.joined)
			l.leave(pl)
			l.admitted(now)
			return store.Result{}, waited, true
		}
		l.ask(pl, now)
		return store.Result{Outcome: store.OutcomeQueued, Previous: previous, Position: pos, Wait: l.wait(pos)}, 0, false
	}
	if free > l.len() {
		return store.Result{}, 0, true
	}
	if l.len() >= req.Queue.Max {
		return store.Result{Outcome: store.OutcomeFull, Previous: previous}, 0, false
	}
	l.join(req.Key, now)
	pos := l.len()
	return store.Result{Outcome: store.OutcomeQueued, Previous: previous, Position: pos, Wait: l.wait(pos)}, 0, false
}
