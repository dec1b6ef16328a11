package redis

// slotIndex finds a cache shard's slots by key hash: open addressing with linear probing, at
// most half full, and deletion by backward shift, so that the cache's constant churn (every
// miss puts one entry and evicts another) leaves no tombstones to probe through. Go's map
// did, and BenchmarkHitCache/miss spent a third of its time probing them.
//
// An entry is the low 32 bits of the key hash (its home position is their low bits) above
// the slot number plus one; 0 is an empty position.
type slotIndex struct {
	table []uint64
	n     int
}

const minIndexSize = 16

func indexEntry(h uint64, slot int32) uint64 { return uint64(uint32(h))<<32 | uint64(uint32(slot)+1) }

func entrySlot(v uint64) int32 { return int32(uint32(v)) - 1 }

// home is the position where probing for an entry with this low hash starts.
func (x *slotIndex) home(low uint64) int { return int(low) & (len(x.table) - 1) }

// lookup returns the slot of the key hashing to h, for which holds confirms the match
// (distinct keys may share a hash), or -1.
func (sh *cacheShard) lookup(h uint64, pool, key string) int32 {
	x := &sh.index
	if x.n == 0 {
		return -1
	}
	low := uint64(uint32(h))
	mask := len(x.table) - 1
	for p := x.home(low); ; p = (p + 1) & mask {
		v := x.table[p]
		if v == 0 {
			return -1
		}
		if v>>32 == low {
			if i := entrySlot(v); sh.slots[i].hash == h && sh.holds(i, pool, key) {
				return i
			}
		}
	}
}

// insert indexes slot i under hash h.
func (x *slotIndex) insert(h uint64, i int32) {
	if 2*(x.n+1) > len(x.table) {
		x.grow()
	}
	x.place(indexEntry(h, i))
	x.n++
}

func (x *slotIndex) place(v uint64) {
	mask := len(x.table) - 1
	p := x.home(v >> 32)
	for x.table[p] != 0 {
		p = (p + 1) & mask
	}
	x.table[p] = v
}

func (x *slotIndex) grow() {
	old := x.table
	x.table = make([]uint64, max(minIndexSize, 2*len(old)))
	for _, v := range old {
		if v != 0 {
			x.place(v)
		}
	}
}

// delete removes the entry of slot i, indexed under hash h, and moves back the entries
// after it that probing would no longer reach across the gap.
func (x *slotIndex) delete(h uint64, i int32) {
	mask := len(x.table) - 1
	want := indexEntry(h, i)
	gap := x.home(want >> 32)
	for x.table[gap] != want {
		gap = (gap + 1) & mask
	}
	for p := (gap + 1) & mask; x.table[p] != 0; p = (p + 1) & mask {
		// The entry at p may fill the gap unless its home lies cyclically in (gap, p].
		home := x.home(x.table[p] >> 32)
		if (p-home)&mask >= (p-gap)&mask {
			x.table[gap] = x.table[p]
			gap = p
		}
	}
	x.table[gap] = 0
	x.n--
}
