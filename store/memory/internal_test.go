package memory

import (
	"context"
	"strconv"
	"testing"
	"time"

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
	return len(p.seats)
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

// TestMapRebuiltAfterExpiry checks that a pool that once held many seats does not keep a map
// sized for them: Go maps never shrink, so the pool rebuilds it.
func TestMapRebuiltAfterExpiry(t *testing.T) {
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
		t.Errorf("peak after every seat expired = %d; want 0 (map rebuilt)", got)
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
