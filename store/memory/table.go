package memory

import "math/bits"

// minTableBits is the log2 of the smallest segment: an empty pool costs 64 bytes of slots.
const minTableBits = 3

// segMaxSlots is the size of a full segment: 65536 slots, 512 KiB. A segment doubles up to
// this size, then splits in two, so that growing the table moves at most this many entries
// at a time however many seats a pool holds. Tests lower it to exercise splits.
var segMaxSlots = 1 << 16

// maxDepth bounds the directory at 2^maxDepth segments (512 KiB of pointers, room for about
// three billion seats in full-size segments); past it, a segment doubles instead of
// splitting. Tests lower it.
var maxDepth uint = 16

// table finds a pool's seats by key. Its entries are fp<<32 | seat, where fp is 32 bits of
// the key's seeded hash, seat its slab index and 0 an empty slot. The top bits of fp choose a
// segment through a directory (extendible hashing); within a segment, open addressing with
// linear probing finds the entry. Nothing in the slots is a pointer, so the garbage collector
// never scans them. Probing compares fingerprints without touching the slab, and growing
// moves entries without hashing a key again. Keys with equal fingerprints are told apart by
// their caller, which compares the keys themselves (seatSet.find).
//
// Why not a Go map[string]uint32: its keys are pointers the garbage collector scans and it
// grows by rehashing everything at once under the pool's lock. Replacing the map (with the
// slab and the arena) took, at 1M seats, a forced GC from 194 ms to 0.2 ms of CPU, memory from
// 119.8 to 62.25 B per seat, AssignHit from 321 to 254 ns and AssignNew from 951 to 571 ns
// with 0 allocations instead of 2; splitting segments took the longest single Assign while a
// pool fills to 4M seats from 225–284 ms to 6–13 ms. Reproduce with
//
//	go test -run '^$' -bench 'AssignHit$|AssignNew$|SeatMemory|GCWithSeats' -benchmem ./store/memory
//	go test -run '^$' -bench 'FillPause|ChurnPause' -benchtime 1x ./store/memory
//
// (README, Numbers: the figures and the commits compared).
type table struct {
	// dir has 1<<depth entries; entry p is the segment of the fingerprints whose top depth
	// bits are p. A segment of local depth d < depth appears 1<<(depth-d) times in a row.
	dir   []*segment
	depth uint
	n     int // entries
}

// segment is one open-addressing table of the fingerprints sharing its top depth bits.
type segment struct {
	slots []uint64
	depth uint // local depth
	shift uint // 32 - log2(len(slots))
	n     int  // entries
}

// newTable returns a table with room for n entries.
func newTable(n int) table {
	// Past what one full segment holds, start with as many full segments as keep each about
	// half full: the fingerprints spread unevenly over them.
	var depth uint
	if !fits(n, segMaxSlots) {
		for depth < maxDepth && n>>depth > segMaxSlots/2 {
			depth++
		}
	}
	size := 1 << minTableBits
	for !fits(n>>depth, size) {
		size *= 2
	}
	t := table{dir: make([]*segment, 1<<depth), depth: depth}
	for i := range t.dir {
		t.dir[i] = newSegment(size, depth)
	}
	return t
}

func newSegment(size int, depth uint) *segment {
	return &segment{slots: make([]uint64, size), depth: depth, shift: uint(32 - bits.TrailingZeros(uint(size)))}
}

// fits reports whether n entries keep a segment of size slots at most 3/4 full: linear
// probing stays short below that, and a probe always ends at an empty slot.
func fits(n, slots int) bool {
	return n <= slots/4*3
}

// segment returns the segment of fingerprint fp.
func (t *table) segment(fp uint32) *segment {
	return t.dir[uint64(fp)>>(32-t.depth)]
}

// home returns the slot of the segment where probing for fingerprint fp starts: the bits of
// fp below those the segment's depth fixes.
func (s *segment) home(fp uint32) int {
	return int(fp << s.depth >> s.shift)
}

// insert adds seat i with fingerprint fp, which must not be in the table yet. A full segment
// doubles, or splits once it has the full size.
func (t *table) insert(fp, i uint32) {
	s := t.segment(fp)
	if !fits(s.n+1, len(s.slots)) {
		if len(s.slots) < segMaxSlots || !t.split(s, fp) {
			s.resize(2 * len(s.slots))
		}
		s = t.segment(fp)
	}
	s.place(uint64(fp)<<32 | uint64(i))
	s.n++
	t.n++
}

// split replaces segment s, which holds fingerprint fp's, by two segments of its size that
// each take the fingerprints with one value of the next bit, doubling the directory when s
// is the deepest. It reports false, changing nothing, when that bit would not divide the
// entries (keys colliding on more bits than the directory can tell apart), or the directory
// is at its largest and would have to double.
func (t *table) split(s *segment, fp uint32) bool {
	if s.depth >= 31 {
		return false
	}
	bit := uint32(1) << (31 - s.depth)
	ones := 0
	for _, e := range s.slots {
		if e != 0 && uint32(e>>32)&bit != 0 {
			ones++
		}
	}
	if ones == 0 || ones == s.n {
		return false
	}
	if s.depth == t.depth {
		if t.depth >= maxDepth {
			return false
		}
		dir := make([]*segment, 2*len(t.dir))
		for j, sg := range t.dir {
			dir[2*j], dir[2*j+1] = sg, sg
		}
		t.dir, t.depth = dir, t.depth+1
	}
	lo, hi := newSegment(len(s.slots), s.depth+1), newSegment(len(s.slots), s.depth+1)
	for _, e := range s.slots {
		if e == 0 {
			continue
		}
		half := lo
		if uint32(e>>32)&bit != 0 {
			half = hi
		}
		half.place(e)
		half.n++
	}
	// s fills a run of 1<<(t.depth-s.depth) directory entries from its prefix on: the first
	// half of the run has the bit 0.
	span := 1 << (t.depth - s.depth)
	first := int(uint64(fp)>>(32-s.depth)) * span
	for j := range span {
		if j < span/2 {
			t.dir[first+j] = lo
		} else {
			t.dir[first+j] = hi
		}
	}
	return true
}

// place puts an entry in the first empty slot from its home on.
func (s *segment) place(e uint64) {
	mask := len(s.slots) - 1
	j := s.home(uint32(e >> 32))
	for s.slots[j] != 0 {
		j = (j + 1) & mask
	}
	s.slots[j] = e
}

// resize moves every entry into a new array of size slots, a power of two.
func (s *segment) resize(size int) {
	old := s.slots
	s.slots = make([]uint64, size)
	s.shift = uint(32 - bits.TrailingZeros(uint(size)))
	for _, e := range old {
		if e != 0 {
			s.place(e)
		}
	}
}

// delete removes seat i with fingerprint fp, which must be in the table. The entries after it
// in its probe run shift back instead of leaving a tombstone, so look-ups never lengthen with
// churn and the table needs no periodic cleaning. Segments never shrink or merge: a pool
// rebuilds its table once most of its peak has expired (pool.expire).
func (t *table) delete(fp, i uint32) {
	s := t.segment(fp)
	mask := len(s.slots) - 1
	want := uint64(fp)<<32 | uint64(i)
	hole := s.home(fp)
	for s.slots[hole] != want {
		if s.slots[hole] == 0 {
			// Every seat of the slab is in the table: this is a bug, not an input error.
			panic("memory: seat missing from its pool's table")
		}
		hole = (hole + 1) & mask
	}
	for j := (hole + 1) & mask; s.slots[j] != 0; j = (j + 1) & mask {
		// The entry at j may move back to the hole unless its home lies in (hole, j],
		// cyclically: probing from there would no longer reach it.
		e := s.slots[j]
		if (j-s.home(uint32(e>>32)))&mask >= (j-hole)&mask {
			s.slots[hole] = e
			hole = j
		}
	}
	s.slots[hole] = 0
	s.n--
	t.n--
}

// segments calls f once for each segment.
func (t *table) segments(f func(*segment)) {
	for j, s := range t.dir {
		if j == 0 || t.dir[j-1] != s {
			f(s)
		}
	}
}

// slotCount returns the slots of every segment.
func (t *table) slotCount() int {
	n := 0
	t.segments(func(s *segment) { n += len(s.slots) })
	return n
}
