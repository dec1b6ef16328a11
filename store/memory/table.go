package memory

import "math/bits"

// minTableBits is the log2 of the smallest table: an empty pool costs 64 bytes of slots.
const minTableBits = 3

// table finds a pool's seats by key: open addressing with linear probing over slots holding
// fp<<32 | seat, where fp is 32 bits of the key's seeded hash, seat its slab index and 0 an
// empty slot. It holds no pointer, so the garbage collector never scans it. Probing compares
// fingerprints without touching the slab, and growing moves slots without hashing a key
// again: a seat's home slot is the top bits of its fingerprint. Keys with equal fingerprints
// are told apart by their caller, which compares the keys themselves (seatSet.find).
type table struct {
	slots []uint64
	shift uint // 32 - log2(len(slots))
	n     int  // entries
}

// newTable returns a table with room for n entries.
func newTable(n int) table {
	b := minTableBits
	for !fits(n, 1<<b) {
		b++
	}
	return table{slots: make([]uint64, 1<<b), shift: uint(32 - b)}
}

// fits reports whether n entries keep a table of size slots at most 3/4 full: linear probing
// stays short below that, and a probe always ends at an empty slot.
func fits(n, slots int) bool {
	return n <= slots/4*3
}

// home returns the slot where probing for fingerprint fp starts.
func (t *table) home(fp uint32) int {
	return int(fp >> t.shift)
}

// insert adds seat i with fingerprint fp, which must not be in the table yet.
func (t *table) insert(fp, i uint32) {
	if !fits(t.n+1, len(t.slots)) {
		t.resize(2 * len(t.slots))
	}
	t.place(uint64(fp)<<32 | uint64(i))
	t.n++
}

// place puts an entry in the first empty slot from its home on.
func (t *table) place(e uint64) {
	mask := len(t.slots) - 1
	j := t.home(uint32(e >> 32))
	for t.slots[j] != 0 {
		j = (j + 1) & mask
	}
	t.slots[j] = e
}

// resize moves every entry into a new array of size slots, a power of two.
func (t *table) resize(size int) {
	old := t.slots
	t.slots = make([]uint64, size)
	t.shift = uint(32 - bits.TrailingZeros(uint(size)))
	for _, e := range old {
		if e != 0 {
			t.place(e)
		}
	}
}

// delete removes seat i with fingerprint fp, which must be in the table. The entries after it
// in its probe run shift back instead of leaving a tombstone, so look-ups never lengthen with
// churn and the table needs no periodic cleaning.
func (t *table) delete(fp, i uint32) {
	mask := len(t.slots) - 1
	want := uint64(fp)<<32 | uint64(i)
	hole := t.home(fp)
	for t.slots[hole] != want {
		if t.slots[hole] == 0 {
			// Every seat of the slab is in the table: this is a bug, not an input error.
			panic("memory: seat missing from its pool's table")
		}
		hole = (hole + 1) & mask
	}
	for j := (hole + 1) & mask; t.slots[j] != 0; j = (j + 1) & mask {
		// The entry at j may move back to the hole unless its home lies in (hole, j],
		// cyclically: probing from there would no longer reach it.
		e := t.slots[j]
		if (j-t.home(uint32(e>>32)))&mask >= (j-hole)&mask {
			t.slots[hole] = e
			hole = j
		}
	}
	t.slots[hole] = 0
	t.n--
}
