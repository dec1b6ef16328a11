package memory

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unsafe"
)

// The state format, version 1. Every integer is a varint (encoding/binary), every string a
// uvarint length and its bytes:
//
//	"stickyseat-state 1\n"          magic line: what the file is, and its version
//	varint  saved at                 wall clock, Unix nanoseconds (informational)
//	uvarint pools
//	per pool:
//	  string  name
//	  varint  idle                   nanoseconds: the pool's latest idle time
//	  uvarint servers; string each   the servers its seats refer to
//	  uvarint seats
//	  varint  base                   wall clock of the least recently seen seat, Unix ns
//	  per seat, least recently seen first:
//	    string  key
//	    uvarint server               index into the pool's servers
//	    uvarint delta                last seen minus the previous seat's (the first: minus base)
//	uint32  CRC-32C (Castagnoli), big-endian, of every byte before it
//
// Last-seen times are wall clock because the store's monotonic epoch does not survive a
// restart. Deltas keep the file small and make "ordered by last seen" hold by construction.
const stateMagic = "stickyseat-state "

// stateVersion is the only format version this build reads and writes.
const stateVersion = 1

// maxStateString bounds a key or name read from a state file; the agent's keys are far
// shorter (assign.MaxKeyLen), so a longer one means the file is not what it claims.
const maxStateString = 1 << 16

// ErrBadState is returned (wrapped) by Load for input that is not a state file this build
// can read: empty, foreign, another version, truncated or corrupt. The store is unchanged.
var ErrBadState = errors.New("bad state file")

// ErrNotEmpty is returned (wrapped) by Load when the store already holds seats: a state is
// restored at start, never merged into live seats.
var ErrNotEmpty = errors.New("store is not empty")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// poolSnapshot is one pool as copied out under its lock, so that encoding and writing
// happen without it. The copies of the slab and the arena are plain memory copies, which
// keeps the lock short; the list is walked in them afterwards.
type poolSnapshot struct {
	name  string
	idle  int64
	names []string // pool.names at the time of the copy; seats index into it
	slab  []seat
	arena arena
	head  uint32
	count int
	// wall and now are one reading of the clock: wall clock Unix ns and nanoseconds since
	// the epoch. A seat's wall clock last-seen is wall - (now - lastSeen).
	wall, now int64
}

// snapshot copies the live seats of every pool. Each pool is locked only for the copy.
func (s *Store) snapshot() []poolSnapshot {
	s.mu.RLock()
	names := make([]string, 0, len(s.pools))
	pools := make([]*pool, 0, len(s.pools))
	for name, p := range s.pools {
		names = append(names, name)
		pools = append(pools, p)
	}
	s.mu.RUnlock()
	var out []poolSnapshot
	for i, p := range pools {
		// Allocate outside the lock, with some room for seats granted meanwhile, and touch
		// every page: the copy under the lock then only copies, without faulting in
		// hundreds of megabytes at millions of seats.
		p.mu.Lock()
		nslab, narena := p.slab.len(), p.arena.bytes()
		p.mu.Unlock()
		slab := prefault(make([]seat, nslab+nslab/8+16))[:0]
		arena := prefault(make([]byte, narena+narena/8+1024))[:0]

		p.mu.Lock()
		t := s.clock()
		now := int64(t.Sub(s.epoch))
		p.expire(now)
		if p.count == 0 {
			p.mu.Unlock()
			continue
		}
		snap := poolSnapshot{name: names[i], idle: p.idle, names: append([]string(nil), p.names...),
			slab: p.slab.appendTo(slab), arena: p.arena.cloneInto(arena), head: p.head, count: p.count,
			wall: t.UnixNano(), now: now}
		p.mu.Unlock()
		out = append(out, snap)
	}
	return out
}

// prefault writes to every page of b, so that the kernel maps them now.
func prefault[E any](b []E) []E {
	var zero E
	if step := 4096 / max(int(unsafe.Sizeof(zero)), 1); step > 0 {
		for i := 0; i < len(b); i += step {
			b[i] = zero
		}
	}
	return b
}

// Save writes the live seats of every pool to w in the state format and returns how many it
// wrote. Pools are copied one at a time under their own lock, then written without it, so
// requests wait only for the copy; seats granted during a Save may or may not be in it.
func (s *Store) Save(w io.Writer) (int, error) {
	snaps := s.snapshot()
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 1<<20)
	e := stateEncoder{w: bw}
	e.raw(fmt.Sprintf("%s%d\n", stateMagic, stateVersion))
	e.varint(s.clock().UnixNano())
	e.uvarint(uint64(len(snaps)))
	seats := 0
	for _, snap := range snaps {
		seats += snap.encode(&e)
	}
	if e.err == nil {
		e.err = bw.Flush()
	}
	if e.err == nil {
		_, e.err = w.Write(binary.BigEndian.AppendUint32(nil, crc.Sum32()))
	}
	if e.err != nil {
		return 0, fmt.Errorf("save state: %w", e.err)
	}
	return seats, nil
}

// encode writes the pool, interning only the servers its seats refer to, and returns the
// number of seats written.
func (snap *poolSnapshot) encode(e *stateEncoder) int {
	// index maps the pool's server indexes to the file's, 0 meaning not yet listed.
	index := make([]uint64, len(snap.names))
	var servers []string
	for i := snap.head; i != 0; i = snap.slab[i].next {
		if st := &snap.slab[i]; index[st.server] == 0 {
			servers = append(servers, snap.names[st.server])
			index[st.server] = uint64(len(servers))
		}
	}
	e.str(snap.name)
	e.varint(snap.idle)
	e.uvarint(uint64(len(servers)))
	for _, name := range servers {
		e.str(name)
	}
	e.uvarint(uint64(snap.count))
	wallOf := func(lastSeen int64) int64 { return snap.wall - (snap.now - lastSeen) }
	prev := wallOf(snap.slab[snap.head].lastSeen)
	e.varint(prev)
	// Least recently seen first.
	for i := snap.head; i != 0; i = snap.slab[i].next {
		st := &snap.slab[i]
		wall := wallOf(st.lastSeen)
		_, key, _ := snap.arena.entry(st.key)
		e.bytes(key)
		e.uvarint(index[st.server] - 1)
		e.uvarint(uint64(wall - prev)) // the list is in last-seen order: never negative
		prev = wall
	}
	return snap.count
}

// stateEncoder appends varints and strings to a buffered writer, keeping the first error.
type stateEncoder struct {
	w   *bufio.Writer
	err error
}

func (e *stateEncoder) write(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *stateEncoder) raw(s string) {
	if e.err == nil {
		_, e.err = e.w.WriteString(s)
	}
}

func (e *stateEncoder) uvarint(v uint64) { e.write(binary.AppendUvarint(e.w.AvailableBuffer(), v)) }

func (e *stateEncoder) varint(v int64) { e.write(binary.AppendVarint(e.w.AvailableBuffer(), v)) }

func (e *stateEncoder) str(s string) {
	e.uvarint(uint64(len(s)))
	e.raw(s)
}

func (e *stateEncoder) bytes(b []byte) {
	e.uvarint(uint64(len(b)))
	e.write(b)
}

// Load restores the seats r holds, written by Save, into an empty store and returns how many
// it restored and how many it dropped because they expired meanwhile: a seat keeps the life
// it had left, its pool's idle time minus the time since it was last seen (wall clock), and
// each pool keeps its last-seen order. A last-seen time in the future (the wall clock went
// back) counts as now.
//
// Load reads all of r and checks it before touching the store: on error the store is
// unchanged. Errors wrap ErrBadState when r is not a state file this build reads, ErrNotEmpty
// when the store already holds seats, or the reader's error.
func (s *Store) Load(r io.Reader) (restored, dropped int, err error) {
	magic := fmt.Sprintf("%s%d\n", stateMagic, stateVersion)
	head := make([]byte, len(magic))
	n, err := io.ReadFull(r, head)
	switch {
	case n == 0 && (err == io.EOF || err == nil):
		return 0, 0, fmt.Errorf("load state: %w: empty", ErrBadState)
	case err == io.ErrUnexpectedEOF || err == nil && string(head) != magic:
		if bytes.HasPrefix(head, []byte(stateMagic)) {
			v, _, _ := bytes.Cut(head[len(stateMagic):], []byte("\n"))
			return 0, 0, fmt.Errorf("load state: %w: version %q, this build reads %d", ErrBadState, v, stateVersion)
		}
		return 0, 0, fmt.Errorf("load state: %w: not a stickyseat state file", ErrBadState)
	case err != nil:
		return 0, 0, fmt.Errorf("load state: %w", err)
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		return 0, 0, fmt.Errorf("load state: %w", err)
	}
	if len(rest) < 4 {
		return 0, 0, fmt.Errorf("load state: %w: truncated", ErrBadState)
	}
	body, sum := rest[:len(rest)-4], binary.BigEndian.Uint32(rest[len(rest)-4:])
	crc := crc32.Update(crc32.Checksum(head, castagnoli), castagnoli, body)
	if crc != sum {
		return 0, 0, fmt.Errorf("load state: %w: checksum mismatch (truncated or corrupt)", ErrBadState)
	}
	pools, restored, dropped, err := s.decode(body)
	if err != nil {
		return 0, 0, fmt.Errorf("load state: %w: %w", ErrBadState, err)
	}
	if err := s.install(pools); err != nil {
		return 0, 0, fmt.Errorf("load state: %w", err)
	}
	return restored, dropped, nil
}

// decode builds the pools of a checked body, dropping the seats that expired.
func (s *Store) decode(body []byte) (map[string]*pool, int, int, error) {
	d := stateDecoder{b: body}
	t := s.clock()
	now, wallNow := int64(t.Sub(s.epoch)), t.UnixNano()
	d.varint() // saved at
	npools := d.count(1)
	pools := make(map[string]*pool, npools)
	restored, dropped := 0, 0
	for range npools {
		name := d.str()
		idle := d.varint()
		servers := make([]string, d.count(1))
		for i := range servers {
			servers[i] = d.str()
		}
		nseats := d.count(3)
		wall := d.varint()
		if d.err != nil {
			break
		}
		if _, dup := pools[name]; dup || name == "" {
			return nil, 0, 0, fmt.Errorf("duplicate or empty pool name %q", name)
		}
		p := newPool()
		p.seatSet = newSeatSet(nseats, p.hash)
		p.idle = idle
		// interned maps the file's server indexes to the pool's, plus one (0: not yet).
		interned := make([]uint32, len(servers))
		for range nseats {
			key := d.str()
			server := d.uvarint()
			delta := d.uvarint()
			if d.err != nil {
				break
			}
			if key == "" || server >= uint64(len(servers)) || delta > 1<<62 {
				return nil, 0, 0, fmt.Errorf("pool %q: bad seat %q", name, key)
			}
			wall += int64(delta)
			age := max(wallNow-wall, 0)
			if idle > 0 && age >= idle {
				// Expired seats are a prefix of the pool, so a key seen here cannot come
				// back among the live seats unless the file repeats it, which the
				// writer never does; a repeat among live seats is caught below.
				dropped++
				continue
			}
			if interned[server] == 0 {
				interned[server] = p.intern(servers[server]) + 1
			}
			fp := p.hash(key)
			if p.find(key, fp) != 0 {
				return nil, 0, 0, fmt.Errorf("pool %q: duplicate key %q", name, key)
			}
			p.used[interned[server]-1]++
			p.pushBack(p.add(key, fp, interned[server]-1), now-age)
			restored++
		}
		if d.err != nil {
			break
		}
		if p.count < nseats/2 {
			// Most seats had expired: give back the room made for them.
			p.rebuild()
		}
		p.peak = p.count
		if p.count > 0 {
			pools[name] = p
		}
	}
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d bytes after the last pool", len(d.b))
	}
	if d.err != nil {
		return nil, 0, 0, d.err
	}
	return pools, restored, dropped, nil
}

// install puts decoded pools into the store, which must hold no live seat. Pools that exist
// already (empty) are filled in place, so requests holding them see the restored seats.
func (s *Store) install(pools map[string]*pool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var locked []*pool
	defer func() {
		for _, p := range locked {
			p.mu.Unlock()
		}
	}()
	now := s.now()
	for _, p := range s.pools {
		p.mu.Lock()
		locked = append(locked, p)
		p.expire(now)
		if p.count > 0 {
			return ErrNotEmpty
		}
	}
	for name, np := range pools {
		p, ok := s.pools[name]
		if !ok {
			np.changes++
			s.pools[name] = np
			continue
		}
		p.seatSet, p.idle, p.peak = np.seatSet, np.idle, np.peak
		p.names, p.used, p.index, p.freeNames = np.names, np.used, np.index, np.freeNames
		p.changes++
	}
	return nil
}

// stateDecoder reads varints and strings from a body, keeping the first error.
type stateDecoder struct {
	b   []byte
	err error
}

func (d *stateDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("truncated or malformed %s", what)
	}
	d.b = nil
}

func (d *stateDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *stateDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a number of items each at least minSize bytes long, and refuses one the rest
// of the body cannot hold, so a bad count never makes a huge allocation.
func (d *stateDecoder) count(minSize int) int {
	v := d.uvarint()
	if v > uint64(len(d.b)/minSize) {
		d.fail("count")
		return 0
	}
	return int(v)
}

func (d *stateDecoder) str() string {
	n := d.uvarint()
	if n > maxStateString || n > uint64(len(d.b)) {
		d.fail("string")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
