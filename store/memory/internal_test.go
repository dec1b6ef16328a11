package memory

import (
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/store"
	"github.com/stickyseat/stickyseat/store/storetest"
)

// held counts the seats a pool holds without expiring any, which the exported Seats does.
func held(s *Store, name string) int {
	p := s.lookup(name)
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

func TestRunSweepsOnTick(t *testing.T) {
	clock := storetest.NewClock(time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC))
	s := New(Options{Clock: clock.Now})
	req := store.Request{Pool: "p", Key: "u1", Servers: []store.Server{{Name: "s1", Quota: 1, Accepting: true}}, Idle: time.Second}
	if _, err := s.Assign(context.Background(), req); err != nil {
		t.Fatalf("Assign: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	tick := make(chan time.Time)
	done := make(chan struct{})
	go func() {
		s.run(ctx, tick)
		close(done)
	}()
	// The tick channel is unbuffered: the second send returns only once the sweep that the
	// first one started is over (the second sweep may still run: the clock is safe for that).
	tick <- time.Time{}
	tick <- time.Time{}
	if got := held(s, "p"); got != 1 {
		t.Errorf("seats held after sweeping a live seat = %d; want 1", got)
	}
	clock.Advance(time.Second)
	tick <- time.Time{}
	tick <- time.Time{}
	if got := held(s, "p"); got != 0 {
		t.Errorf("seats held after sweeping an expired seat = %d; want 0", got)
	}
	cancel()
	<-done
}

// TestSeatsRebuiltAfterExpiry checks that a pool that once held many seats does not keep a
// slab and a table sized for them: they only grow, so the pool rebuilds them.
func TestSeatsRebuiltAfterExpiry(t *testing.T) {
	clock := storetest.NewClock(time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC))
	s := New(Options{Clock: clock.Now})
	servers := []store.Server{{Name: "s1", Quota: 1 << 20, Accepting: true}}
	const burst = 4 * shrinkMin
	for i := range burst {
		req := store.Request{Pool: "p", Key: "u" + strconv.Itoa(i), Servers: servers, Idle: time.Second}
		if _, err := s.Assign(context.Background(), req); err != nil {
			t.Fatalf("Assign: %v", err)
		}
	}
	p := s.lookup("p")
	if got := p.peak; got != burst {
		t.Errorf("peak after %d seats = %d; want %d", burst, got, burst)
	}
	clock.Advance(time.Second)
	s.Sweep()
	if got := p.peak; got != 0 {
		t.Errorf("peak after every seat expired = %d; want 0 (seats rebuilt)", got)
	}
}

// TestLargePoolNotRebuilt checks that a pool still holding more than shrinkMax seats is not
// rebuilt however far below its peak it fell (a rebuild copies every live seat under the
// lock), and is once it holds fewer.
func TestLargePoolNotRebuilt(t *testing.T) {
	old := shrinkMax
	shrinkMax = 2 * shrinkMin
	t.Cleanup(func() { shrinkMax = old })
	clock := storetest.NewClock(time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC))
	s := New(Options{Clock: clock.Now})
	servers := []store.Server{{Name: "s1", Quota: 1 << 20, Accepting: true}}
	assign := func(n int) {
		for i := range n {
			req := store.Request{Pool: "p", Key: "u" + strconv.Itoa(i), Servers: servers, Idle: 2 * time.Second}
			if _, err := s.Assign(context.Background(), req); err != nil {
				t.Fatalf("Assign: %v", err)
			}
		}
	}
	const burst = 16 * shrinkMin
	assign(burst)
	p := s.lookup("p")
	clock.Advance(time.Second)
	assign(3 * shrinkMin) // a quarter of the peak minus some, above shrinkMax
	clock.Advance(1500 * time.Millisecond)
	s.Sweep()
	if p.count != 3*shrinkMin || p.peak != burst {
		t.Errorf("after the burst expired: %d seats, peak %d; want %d, %d (not rebuilt)", p.count, p.peak, 3*shrinkMin, burst)
	}
	assign(shrinkMin)
	clock.Advance(1900 * time.Millisecond)
	s.Sweep()
	if p.count != shrinkMin || p.peak != shrinkMin {
		t.Errorf("after all but %d expired: %d seats, peak %d; want %d, %d (rebuilt)", shrinkMin, p.count, p.peak, shrinkMin, shrinkMin)
	}
	if err := p.invariants(); err != nil {
		t.Error(err)
	}
}

// TestStateRoundTripAcrossChunks saves and loads a pool whose seats span several slab
// chunks, with small arena chunks and table segments and a third of the seats evicted, and
// checks that every seat comes back with its key and last-seen time, in order.
func TestStateRoundTripAcrossChunks(t *testing.T) {
	smallChunks(t, 4096)
	smallSegments(t, 64, 16)
	clock := storetest.NewClock(time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC))
	s := New(Options{Clock: clock.Now})
	servers := []store.Server{{Name: "a", Quota: 1 << 30, Accepting: true}}
	const n = 40000 // more than two slab chunks
	ctx := context.Background()
	for i := range n {
		clock.Advance(time.Millisecond)
		if _, err := s.Assign(ctx, store.Request{Pool: "p", Key: "k" + strconv.Itoa(i), Servers: servers, Idle: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i += 3 {
		if _, err := s.Evict(ctx, "p", "k"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.lookup("p").invariants(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := s.Save(&buf); err != nil {
		t.Fatal(err)
	}
	loaded := New(Options{Clock: clock.Now})
	restored, dropped, err := loaded.Load(&buf)
	if err != nil || dropped != 0 || restored != s.Seats("p") {
		t.Fatalf("Load = %d restored, %d dropped, %v; want %d, 0, nil", restored, dropped, err, s.Seats("p"))
	}
	if err := loaded.lookup("p").invariants(); err != nil {
		t.Fatal(err)
	}
	want, _ := s.LiveSeats(ctx, "p", serversOf(s, "p"), 0, n)
	got, _ := loaded.LiveSeats(ctx, "p", serversOf(loaded, "p"), 0, n)
	if len(got) != len(want) {
		t.Fatalf("LiveSeats after Load: %d seats; want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Key != want[i].Key || !got[i].LastSeen.Equal(want[i].LastSeen) {
			t.Fatalf("seat %d after Load = %+v; want %+v", i, got[i], want[i])
		}
	}
}

func TestLessRatio(t *testing.T) {
	const maxInt = int(^uint(0) >> 1)
	tests := []struct {
		u1, q1, u2, q2 int
		want           bool
	}{
		{0, 1, 0, 1, false},
		{0, 4, 1, 2, true},
		{1, 3, 1, 2, true},
		{2, 3, 1, 2, false},
		{2, 4, 1, 2, false},
		{1, 2, 2, 4, false},
		// Products overflow 64 bits: only the 128-bit comparison gets these right.
		{maxInt - 2, maxInt, maxInt - 1, maxInt, true},
		{maxInt - 1, maxInt, maxInt - 2, maxInt, false},
		{maxInt - 1, maxInt, 1, 2, false},
	}
	for _, tt := range tests {
		if got := lessRatio(tt.u1, tt.q1, tt.u2, tt.q2); got != tt.want {
			t.Errorf("lessRatio(%d/%d < %d/%d) = %v; want %v", tt.u1, tt.q1, tt.u2, tt.q2, got, tt.want)
		}
	}
}

// TestServerNamesForgotten checks that a pool forgets a server once it holds no seat, so a
// configuration that keeps renaming servers does not grow the pool.
func TestServerNamesForgotten(t *testing.T) {
	clock := storetest.NewClock(time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC))
	s := New(Options{Clock: clock.Now})
	for i := range 1000 {
		name := "s" + strconv.Itoa(i)
		req := store.Request{Pool: "p", Key: "u" + strconv.Itoa(i), Servers: []store.Server{{Name: name, Quota: 1, Accepting: true}}, Idle: time.Second}
		got, err := s.Assign(context.Background(), req)
		if want := (store.Result{Outcome: store.OutcomeNew, Server: name}); err != nil || got != want {
			t.Fatalf("Assign(%q) = %+v, %v; want %+v", req.Key, got, err, want)
		}
		clock.Advance(time.Second)
	}
	p := s.lookup("p")
	if got, want := len(p.names), 1; got != want {
		t.Errorf("interned names after 1000 servers, one at a time = %d; want %d", got, want)
	}
	if got, want := len(p.index), 1; got != want {
		t.Errorf("name index entries = %d; want %d", got, want)
	}
}

// TestClockSteppingBack checks that a clock going backwards keeps the list ordered: the seat
// is treated as seen at the latest time the pool saw, so it never expires before older seats.
func TestClockSteppingBack(t *testing.T) {
	begin := time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC)
	clock := storetest.NewClock(begin)
	s := New(Options{Clock: clock.Now})
	servers := []store.Server{{Name: "s1", Quota: 10, Accepting: true}}
	assign := func(key string) {
		t.Helper()
		if _, err := s.Assign(context.Background(), store.Request{Pool: "p", Key: key, Servers: servers, Idle: 10 * time.Second}); err != nil {
			t.Fatalf("Assign(%q): %v", key, err)
		}
	}
	assign("u1")
	clock.Advance(-5 * time.Second)
	assign("u2")
	if err := s.lookup("p").invariants(); err != nil {
		t.Fatalf("after the clock stepped back: %v", err)
	}
	steps := []struct {
		at   time.Duration // since begin
		want int
	}{
		{10*time.Second - 1, 2},
		{10 * time.Second, 0},
	}
	for _, st := range steps {
		clock.Advance(begin.Add(st.at).Sub(clock.Now()))
		if got := s.Seats("p"); got != st.want {
			t.Errorf("Seats(p) at begin+%v = %d; want %d", st.at, got, st.want)
		}
	}
}

// TestRunStateSkipsUnchanged checks a tick writes the file only when a request or an
// eviction changed the store since the last save (each save renames a new file into place).
func TestRunStateSkipsUnchanged(t *testing.T) {
	clock := storetest.NewClock(time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC))
	s := New(Options{Clock: clock.Now})
	path := filepath.Join(t.TempDir(), "seats.state")
	ctx, cancel := context.WithCancel(context.Background())
	tick := make(chan time.Time)
	done := make(chan struct{})
	go func() {
		s.runState(ctx, path, tick, zerolog.Nop())
		close(done)
	}()
	// The tick channel is unbuffered: the second send returns once the first tick's save
	// is over.
	step := func() os.FileInfo {
		tick <- time.Time{}
		tick <- time.Time{}
		info, err := os.Stat(path)
		if err != nil {
			t.Fatalf("state file after a tick: %v", err)
		}
		return info
	}
	ctxb := context.Background()
	req := store.Request{Pool: "p", Key: "u1", Servers: []store.Server{{Name: "s1", Quota: 1, Accepting: true}}, Idle: time.Hour}
	first := step() // an empty store is saved once
	if again := step(); !os.SameFile(first, again) {
		t.Errorf("state file rewritten with no change")
	}
	for _, change := range []func() error{
		func() error { _, err := s.Assign(ctxb, req); return err },
		func() error { _, err := s.Assign(ctxb, req); return err }, // a hit refreshes last-seen
		func() error { _, err := s.Evict(ctxb, "p", "u1"); return err },
	} {
		if err := change(); err != nil {
			t.Fatal(err)
		}
		if after := step(); os.SameFile(first, after) {
			t.Errorf("state file not rewritten after a change")
		} else {
			first = after
		}
	}
	cancel()
	<-done
}

// serversOf lists the servers holding seats in pool, for the inspection methods, which answer
// for the servers they are given.
func serversOf(s *Store, pool string) []string {
	return slices.Collect(maps.Keys(s.Usage(pool)))
}
