package memory

import (
	"encoding/binary"
	"math/bits"
)

// arenaChunk is the size of a full chunk of an arena: 256 KiB, which bounds the work of one
// compaction. Tests lower it to exercise chunks with few keys.
var arenaChunk = 256 << 10

// entryHead is the size of an entry's header: the slab index of the seat the key belongs to,
// which a compaction reads to find whether the entry is live and to move the seat's offset.
const entryHead = 4

// arena holds the keys of a pool's seats in chunks. An entry is the seat's index (4 bytes,
// little endian), the key's length (uvarint) and the key; a seat refers to its entry by an
// offset that names the chunk and the position in it (entryOff), never 0.
//
// Keys are appended to the current chunk; the others are sealed. The key of a seat that goes
// is garbage in its chunk. A sealed chunk that becomes half garbage is evacuated: its live
// entries move to the current chunk and the chunk is freed. A full current chunk that is half
// garbage is compacted in place; otherwise it is sealed and another one started. Every step
// touches one chunk, never the whole arena, and no chunk is ever more than half garbage but
// the current one, so the arena holds at most about twice the live keys plus one chunk. The
// first chunk starts small and grows up to the full size, so that small pools stay small.
//
// Why not a string per seat: a million strings are a million pointers for the garbage
// collector to scan and 16 bytes of header each. With the keys here (and the table and slab
// beside them) a forced GC at 1M seats costs 0.2 ms of CPU instead of 194 ms and a seat 62–66
// bytes instead of 120; chunks bound a compaction, so the longest Assign while 4M seats churn
// went from 133–150 ms to 4–12 ms. Reproduce with
//
//	go test -run '^$' -bench 'SeatMemory|GCWithSeats' -benchmem ./store/memory
//	go test -run '^$' -bench 'ChurnPause' -benchtime 1x ./store/memory
type arena struct {
	chunks  [][]byte // nil: a freed chunk, whose index is in free
	garbage []int    // bytes of each chunk that belong to no seat
	cur     int      // the chunk keys are appended to
	total   int      // garbage of all chunks
	free    []int    // indexes of freed chunks, reused before the list grows
	spare   []byte   // one emptied full-size chunk, kept for the next one started
}

// newArena returns an arena whose first chunk has room for n bytes, up to a full chunk.
func newArena(n int) arena {
	return arena{chunks: [][]byte{make([]byte, 0, min(n, arenaChunk))}, garbage: []int{0}}
}

// entryOff is the offset of the entry at position pos of chunk c.
func entryOff(c, pos int) uint64 { return uint64(c+1)<<32 | uint64(pos) }

// splitOff returns the chunk and position of offset off.
func splitOff(off uint64) (c, pos int) { return int(off>>32) - 1, int(uint32(off)) }

// entryAt reads the entry at the start of b: its seat, its key and its size in bytes.
func entryAt(b []byte) (seat uint32, key []byte, size int) {
	seat = binary.LittleEndian.Uint32(b)
	b = b[entryHead:]
	if n := int(b[0]); n < 0x80 {
		return seat, b[1 : 1+n], entryHead + 1 + n
	}
	n, w := binary.Uvarint(b)
	return seat, b[w : w+int(n)], entryHead + w + int(n)
}

// entry reads the entry at offset off.
func (a *arena) entry(off uint64) (seat uint32, key []byte, size int) {
	c, pos := splitOff(off)
	return entryAt(a.chunks[c][pos:])
}

// entrySize returns the bytes the entry of a key of n bytes takes.
func entrySize(n int) int {
	return entryHead + (bits.Len64(uint64(n)|1)+6)/7 + n
}

// bytes returns the bytes in use in the arena, garbage included.
func (a *arena) bytes() int {
	n := 0
	for _, b := range a.chunks {
		n += len(b)
	}
	return n
}

// capacity returns the bytes the arena's chunks hold, spare chunk included.
func (a *arena) capacity() int {
	n := cap(a.spare)
	for _, b := range a.chunks {
		n += cap(b)
	}
	return n
}

// appendKey appends the entry of key for seat i to the current chunk, making room first, and
// returns its offset. Making room may move other seats' entries (see arena).
func (s *seatSet) appendKey(key string, i uint32) uint64 {
	c := s.reserve(entrySize(len(key)))
	a := &s.arena
	b := a.chunks[c]
	pos := len(b)
	b = binary.LittleEndian.AppendUint32(b, i)
	b = binary.AppendUvarint(b, uint64(len(key)))
	a.chunks[c] = append(b, key...)
	return entryOff(c, pos)
}

// appendEntry appends a whole entry, as read from another chunk, to the current chunk, making
// room first, and returns its offset.
func (s *seatSet) appendEntry(e []byte) uint64 {
	c := s.reserve(len(e))
	a := &s.arena
	pos := len(a.chunks[c])
	a.chunks[c] = append(a.chunks[c], e...)
	return entryOff(c, pos)
}

// reserve returns the chunk to append an entry of need bytes to: the current one, made room
// in; or, for an entry larger than half a chunk, a sealed chunk of its own and of its size,
// so that a big key never seals a current chunk holding little (each small key would then
// pin a whole chunk). A one-entry chunk is all live or all garbage: dropping its key frees
// it, and no evacuation ever copies it. Its entry's position is 0, so offsets stay exact
// whatever its size.
func (s *seatSet) reserve(need int) int {
	a := &s.arena
	if cur := a.chunks[a.cur]; len(cur)+need <= cap(cur) {
		return a.cur
	}
	if need > arenaChunk/2 {
		b := make([]byte, 0, need)
		if n := len(a.free); n > 0 {
			c := a.free[n-1]
			a.free = a.free[:n-1]
			a.chunks[c], a.garbage[c] = b, 0
			return c
		}
		a.chunks = append(a.chunks, b)
		a.garbage = append(a.garbage, 0)
		return len(a.chunks) - 1
	}
	s.makeRoom(need)
	return a.cur
}

// makeRoom makes the current chunk able to take need more bytes.
func (s *seatSet) makeRoom(need int) {
	a := &s.arena
	if g := a.garbage[a.cur]; g > 0 && 2*g >= len(a.chunks[a.cur]) {
		s.compactChunk(a.cur)
		if cur := a.chunks[a.cur]; len(cur)+need <= cap(cur) {
			return
		}
	}
	if cur := a.chunks[a.cur]; cap(cur) < arenaChunk {
		if size := min(max(2*cap(cur), 256), arenaChunk); len(cur)+need <= size {
			grown := make([]byte, len(cur), size)
			copy(grown, cur)
			a.chunks[a.cur] = grown
			return
		}
	}
	// Seal the current chunk, or free it when it holds nothing (a key larger than it), and
	// start another.
	var b []byte
	if need <= cap(a.spare) {
		b, a.spare = a.spare, nil
	} else {
		b = make([]byte, 0, max(arenaChunk, need))
	}
	old := a.cur
	if n := len(a.free); n > 0 {
		a.cur, a.free = a.free[n-1], a.free[:n-1]
		a.chunks[a.cur], a.garbage[a.cur] = b, 0
	} else {
		a.cur = len(a.chunks)
		a.chunks = append(a.chunks, b)
		a.garbage = append(a.garbage, 0)
	}
	if len(a.chunks[old]) == 0 {
		a.chunks[old] = nil
		a.free = append(a.free, old)
	}
}

// live reports whether the entry at position pos of chunk c, of seat i, is the seat's key: a
// freed seat's key offset is 0, and a seat whose key was added again refers elsewhere.
func (s *seatSet) live(c, pos int, i uint32) bool {
	return int(i) < s.slab.len() && s.slab.at(i).key == entryOff(c, pos)
}

// compactChunk moves the live entries of chunk c to its start, in place, and updates their
// seats. It costs O(chunk size).
func (s *seatSet) compactChunk(c int) {
	a := &s.arena
	b := a.chunks[c]
	w := 0
	for pos := 0; pos < len(b); {
		i, _, size := entryAt(b[pos:])
		if s.live(c, pos, i) {
			copy(b[w:], b[pos:pos+size])
			s.slab.at(i).key = entryOff(c, w)
			w += size
		}
		pos += size
	}
	a.chunks[c] = b[:w]
	a.total -= a.garbage[c]
	a.garbage[c] = 0
}

// evacuate moves the live entries of sealed chunk c to the current chunk and frees c. It
// costs O(chunk size).
func (s *seatSet) evacuate(c int) {
	a := &s.arena
	b := a.chunks[c]
	for pos := 0; pos < len(b); {
		i, _, size := entryAt(b[pos:])
		if s.live(c, pos, i) {
			// Appending never touches a sealed chunk, and c is freed only below.
			s.slab.at(i).key = s.appendEntry(b[pos : pos+size])
		}
		pos += size
	}
	a.total -= a.garbage[c]
	a.chunks[c], a.garbage[c] = nil, 0
	a.free = append(a.free, c)
	if cap(b) == arenaChunk && a.spare == nil {
		a.spare = b[:0]
	}
}

// dropKey makes the entry at off garbage; its seat no longer refers to it. A sealed chunk
// that is half garbage is evacuated.
func (s *seatSet) dropKey(off uint64) {
	a := &s.arena
	_, _, size := a.entry(off)
	c, _ := splitOff(off)
	a.garbage[c] += size
	a.total += size
	if c != a.cur && 2*a.garbage[c] >= len(a.chunks[c]) {
		s.evacuate(c)
	}
}

// setSeat changes the seat of the entry at off to i.
func (a *arena) setSeat(off uint64, i uint32) {
	c, pos := splitOff(off)
	binary.LittleEndian.PutUint32(a.chunks[c][pos:], i)
}

// cloneInto returns a copy of the arena's chunks, for reading its entries, in buf (which
// grows if too small).
func (a *arena) cloneInto(buf []byte) arena {
	buf = buf[:0]
	if n := a.bytes(); cap(buf) < n {
		buf = make([]byte, 0, n)
	}
	out := arena{chunks: make([][]byte, len(a.chunks))}
	for c, b := range a.chunks {
		if b != nil {
			start := len(buf)
			buf = append(buf, b...)
			out.chunks[c] = buf[start:len(buf):len(buf)]
		}
	}
	return out
}
