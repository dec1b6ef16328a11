package memory

// slabChunkBits is the log2 of the seats in one chunk of a slab: 16384 seats, 512 KiB.
const slabChunkBits = 14

const slabChunk = 1 << slabChunkBits

// slab is a growable array of seats kept in chunks of slabChunk, so that growing it allocates
// one chunk and moves nothing: a slice grown by append would copy every seat each time it
// doubles, and a pool would wait for that copy (hundreds of milliseconds at millions of
// seats). The first chunk grows by append up to its full size, so small pools stay small.
type slab struct {
	chunks [][]seat
	n      uint32 // elements, element 0 included
}

// newSlab returns a slab holding only element 0 (never a seat), with room for n seats in its
// first chunk up to the chunk size.
func newSlab(n int) slab {
	first := make([]seat, 1, min(n+1, slabChunk))
	return slab{chunks: [][]seat{first}, n: 1}
}

// at returns element i, which must be below len.
func (s *slab) at(i uint32) *seat {
	return &s.chunks[i>>slabChunkBits][i&(slabChunk-1)]
}

// len returns the number of elements, element 0 included.
func (s *slab) len() int { return int(s.n) }

// grow appends a zero element and returns its index.
func (s *slab) grow() uint32 {
	i := s.n
	c := int(i >> slabChunkBits)
	if c == len(s.chunks) {
		s.chunks = append(s.chunks, make([]seat, 0, slabChunk))
	}
	ch := s.chunks[c]
	if len(ch) == cap(ch) {
		// Only the first chunk is ever full short of slabChunk: grow it, up to slabChunk
		// exactly (append would round past it).
		grown := make([]seat, len(ch), min(max(2*cap(ch), 16), slabChunk))
		copy(grown, ch)
		ch = grown
	}
	s.chunks[c] = append(ch, seat{})
	s.n++
	return i
}

// capacity returns the number of elements the slab holds without allocating.
func (s *slab) capacity() int {
	n := 0
	for _, c := range s.chunks {
		n += cap(c)
	}
	return n
}

// appendTo appends every element, element 0 included, to dst: a flat copy indexed like the
// slab.
func (s *slab) appendTo(dst []seat) []seat {
	for _, c := range s.chunks {
		dst = append(dst, c...)
	}
	return dst
}
