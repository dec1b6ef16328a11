package memory

import (
	"hash/maphash"
)

// seat is one user's seat, an element of its pool's slab. It holds no pointer, so that the
// garbage collector has nothing to trace in a pool of millions of seats: the list links are
// slab indexes, the key an offset into the pool's arena, the server an index into the pool's
// interned names.
type seat struct {
	// prev and next link the seats in last-seen order, 0 meaning none; a free seat's next
	// is the next free one.
	prev, next uint32
	fp         uint32 // the key's fingerprint, which finds the seat in the table
	server     uint32 // index into pool.names
	lastSeen   int64  // nanoseconds since Store.epoch
	key        uint64 // offset of the key's entry in the arena (see arena), 0 when free
}

// seatSet holds the seats of one pool in three structures whose bulk holds no pointer: the
// slab of seats, the arena of their keys and the table that finds a seat by key, each made of
// chunks or segments so that none grows or shrinks in one long step; the garbage collector
// scans only their few chunk and segment headers. Freed seats are reused; freed key bytes
// are garbage until their chunk is compacted. Indexes are uint32: a pool holds fewer than
// 2^32 seats (that would take 128 GiB of slab alone).
type seatSet struct {
	slab  slab   // element 0 is never a seat, so that index 0 means none
	free  uint32 // first free element of the slab, chained by next
	count int    // live seats

	// head is the least recently seen seat, tail the most recent: expiry pops from the head,
	// a refresh moves a seat to the tail.
	head, tail uint32

	arena arena

	table table
	// hash returns a key's fingerprint. It is seeded per set (maphash), so that keys from
	// the network cannot be chosen to collide; tests replace it to make them collide.
	hash func(key string) uint32
}

// newSeatSet returns an empty set with room for n seats.
func newSeatSet(n int, hash func(string) uint32) seatSet {
	return seatSet{slab: newSlab(n), arena: newArena(0), table: newTable(n), hash: hash}
}

// seededHash returns a key hash with a random seed of its own.
func seededHash() func(string) uint32 {
	seed := maphash.MakeSeed()
	return func(key string) uint32 {
		return uint32(maphash.String(seed, key) >> 32)
	}
}

// key returns the key of seat i; the bytes are the arena's, valid until the next change.
func (s *seatSet) key(i uint32) []byte {
	_, k, _ := s.arena.entry(s.slab.at(i).key)
	return k
}

// find returns the seat holding key, whose fingerprint is fp, or 0 when there is none.
func (s *seatSet) find(key string, fp uint32) uint32 {
	sg := s.table.segment(fp)
	mask := len(sg.slots) - 1
	for j := sg.home(fp); ; j = (j + 1) & mask {
		e := sg.slots[j]
		if e == 0 {
			return 0
		}
		if uint32(e>>32) == fp && string(s.key(uint32(e))) == key {
			return uint32(e)
		}
	}
}

// add stores a seat for key, whose fingerprint is fp, on server, and returns its index. The
// key must not be in the set; the seat is not in the list yet.
func (s *seatSet) add(key string, fp, server uint32) uint32 {
	i := s.free
	if i != 0 {
		s.free = s.slab.at(i).next
	} else {
		i = s.slab.grow()
	}
	// The arena copies the key: the caller's string is not kept alive.
	*s.slab.at(i) = seat{fp: fp, server: server}
	s.slab.at(i).key = s.appendKey(key, i)
	s.table.insert(fp, i)
	s.count++
	return i
}

// drop deletes seat i from the list, the table and the arena, and frees its slab element.
func (s *seatSet) drop(i uint32) {
	s.unlink(i)
	st := s.slab.at(i)
	s.table.delete(st.fp, i)
	off := st.key
	*st = seat{next: s.free}
	s.free = i
	s.count--
	s.dropKey(off)
}

// pushBack appends seat i, seen at now, to the tail of the list. A clock that steps back is
// clamped to the tail's last-seen so that the list stays ordered.
func (s *seatSet) pushBack(i uint32, now int64) {
	if s.tail != 0 {
		t := s.slab.at(s.tail)
		now = max(now, t.lastSeen)
		t.next = i
	} else {
		s.head = i
	}
	st := s.slab.at(i)
	st.lastSeen = now
	st.prev, st.next = s.tail, 0
	s.tail = i
}

// unlink takes seat i out of the list.
func (s *seatSet) unlink(i uint32) {
	st := s.slab.at(i)
	if st.prev != 0 {
		s.slab.at(st.prev).next = st.next
	} else {
		s.head = st.next
	}
	if st.next != 0 {
		s.slab.at(st.next).prev = st.prev
	} else {
		s.tail = st.prev
	}
	st.prev, st.next = 0, 0
}

// rebuild copies the live seats, in last-seen order, into a right-sized slab, arena and
// table, so that the memory a burst took is given back once its seats are gone. It costs
// O(live seats).
func (s *seatSet) rebuild() {
	n := s.count
	fresh := seatSet{slab: newSlab(n), arena: newArena(s.arena.bytes() - s.arena.total), table: newTable(n)}
	for i := s.head; i != 0; i = s.slab.at(i).next {
		st := *s.slab.at(i)
		j := fresh.slab.grow()
		_, _, size := s.arena.entry(st.key)
		c, pos := splitOff(st.key)
		st.key = fresh.appendEntry(s.arena.chunks[c][pos : pos+size])
		fresh.arena.setSeat(st.key, j)
		st.prev, st.next = j-1, j+1
		*fresh.slab.at(j) = st
		fresh.table.insert(st.fp, j)
	}
	s.head, s.tail = 0, 0
	if n > 0 {
		fresh.slab.at(uint32(n)).next = 0
		s.head, s.tail = 1, uint32(n)
	}
	s.slab, s.free, s.arena, s.table = fresh.slab, 0, fresh.arena, fresh.table
}
