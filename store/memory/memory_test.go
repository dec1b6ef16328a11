package memory_test

import (
	"context"
	"errors"
	"maps"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/store"
	"github.com/stickyseat/stickyseat/store/memory"
	"github.com/stickyseat/stickyseat/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) store.Store {
		return memory.New(memory.Options{Clock: clock.Now})
	})
}

var start = time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC)

const idle = 10 * time.Second

// fixture is a store on a fake clock.
type fixture struct {
	t     *testing.T
	clock *storetest.Clock
	store *memory.Store
}

func newFixture(t *testing.T) *fixture {
	clock := storetest.NewClock(start)
	return &fixture{t: t, clock: clock, store: memory.New(memory.Options{Clock: clock.Now})}
}

func (f *fixture) assign(pool, key string, servers ...store.Server) store.Result {
	f.t.Helper()
	req := store.Request{Pool: pool, Key: key, Servers: servers, Idle: idle}
	got, err := f.store.Assign(context.Background(), req)
	if err != nil {
		f.t.Fatalf("Assign(%q, %q) error: %v", pool, key, err)
	}
	return got
}

func up(name string, quota int) store.Server {
	return store.Server{Name: name, Quota: quota, Accepting: true}
}

func TestSweepReclaimsWithoutRequests(t *testing.T) {
	f := newFixture(t)
	for i := range 100 {
		f.assign("a", "user-"+strconv.Itoa(i), up("s1", 1000))
		f.assign("b", "user-"+strconv.Itoa(i), up("s1", 1000))
	}
	f.clock.Advance(idle)
	f.store.Sweep()
	for _, pool := range []string{"a", "b"} {
		if got := f.store.Seats(pool); got != 0 {
			t.Errorf("Seats(%q) after expiry and Sweep = %d; want 0", pool, got)
		}
	}
}

func TestUsage(t *testing.T) {
	f := newFixture(t)
	three := []store.Server{up("s1", 2), up("s2", 2), up("s3", 2)}
	steps := []struct {
		after     time.Duration
		do        func()
		wantUsage map[string]int
		wantSeats int
	}{
		{0, func() {}, map[string]int{}, 0},
		{0, func() {
			for _, k := range []string{"u1", "u2", "u3", "u4"} {
				f.assign("p", k, three...)
			}
		}, map[string]int{"s1": 2, "s2": 1, "s3": 1}, 4},
		// s1 leaves u1's list: u1 moves to s2, u4 stays counted on s1.
		{idle / 2, func() { f.assign("p", "u1", three[1:]...) }, map[string]int{"s1": 1, "s2": 2, "s3": 1}, 4},
		// u1 was refreshed at idle/2, the others expire at idle.
		{idle/2 - 1, func() {}, map[string]int{"s1": 1, "s2": 2, "s3": 1}, 4},
		{1, func() {}, map[string]int{"s2": 1}, 1},
		{idle / 2, func() {}, map[string]int{}, 0},
	}
	for i, st := range steps {
		f.clock.Advance(st.after)
		st.do()
		if got := f.store.Usage("p"); !maps.Equal(got, st.wantUsage) {
			t.Errorf("step %d: Usage(p) = %v; want %v", i, got, st.wantUsage)
		}
		if got := f.store.Seats("p"); got != st.wantSeats {
			t.Errorf("step %d: Seats(p) = %d; want %d", i, got, st.wantSeats)
		}
	}
	if got := f.store.Usage("unknown"); len(got) != 0 {
		t.Errorf("Usage(unknown) = %v; want empty", got)
	}
	if got := f.store.Seats("unknown"); got != 0 {
		t.Errorf("Seats(unknown) = %d; want 0", got)
	}
}

// TestChurnBounded passes many distinct users through a pool with expiry: the live seats, and
// the heap, must stay bounded by the users live at once, not grow with the users ever seen.
func TestChurnBounded(t *testing.T) {
	const (
		rounds     = 6
		perRound   = 50_000
		maxLive    = 1000
		step       = idle / maxLive // one user per step: maxLive users live at once
		heapGrowth = 4 << 20
	)
	f := newFixture(t)
	list := []store.Server{up("s1", maxLive), up("s2", maxLive)}
	user := 0
	round := func() {
		for range perRound {
			f.clock.Advance(step)
			if got := f.assign("p", "user-"+strconv.Itoa(user), list...); got.Outcome != store.OutcomeNew {
				t.Fatalf("Assign(user-%d) = %+v; want a new seat", user, got)
			}
			user++
		}
		// At most maxLive seats are live: those refreshed within the last idle.
		if got := f.store.Seats("p"); got > maxLive {
			t.Fatalf("Seats(p) after %d users = %d; want at most %d", user, got, maxLive)
		}
	}
	round()
	before := heapAlloc()
	for range rounds - 1 {
		round()
	}
	if after := heapAlloc(); after > before+heapGrowth {
		t.Errorf("heap after %d users = %d B; want at most %d B over the %d B after the first %d",
			user, after, heapGrowth, before, perRound)
	}
	if got, want := f.store.Usage("p"), (map[string]int{"s1": maxLive / 2, "s2": maxLive / 2}); !maps.Equal(got, want) {
		t.Errorf("Usage(p) = %v; want %v", got, want)
	}
}

// TestMemoryGivenBackAfterBurst checks that the heap a burst of seats took is given back once
// they expired, while the pool keeps a few seats and stays in use.
func TestMemoryGivenBackAfterBurst(t *testing.T) {
	const (
		burst = 100_000
		keep  = 1000
	)
	f := newFixture(t)
	servers := []store.Server{up("s1", burst), up("s2", burst)}
	before := heapAlloc()
	for i := range burst {
		f.assign("p", "burst-"+strconv.Itoa(i), servers...)
	}
	f.clock.Advance(idle / 2)
	for i := range keep {
		f.assign("p", "kept-"+strconv.Itoa(i), servers...)
	}
	during := heapAlloc()
	f.clock.Advance(idle / 2)
	f.store.Sweep()
	after := heapAlloc()
	if got := f.store.Seats("p"); got != keep {
		t.Fatalf("Seats(p) after the burst expired = %d; want %d", got, keep)
	}
	if grown := during - before; after > before+grown/10 {
		t.Errorf("heap: %d B before, %d B with %d seats, %d B once %d are left; want at most a tenth of the burst's %d B kept",
			before, during, burst+keep, after, keep, grown)
	}
}

func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func TestCanceledContext(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := store.Request{Pool: "p", Key: "u1", Servers: []store.Server{up("s1", 1)}, Idle: idle}
	if got, err := f.store.Assign(ctx, req); !errors.Is(err, context.Canceled) {
		t.Errorf("Assign(canceled ctx) = %+v, %v; want error wrapping %v", got, err, context.Canceled)
	}
	if got := f.store.Seats("p"); got != 0 {
		t.Errorf("Seats(p) after a canceled Assign = %d; want 0", got)
	}
}

func TestRunReturnsWhenCanceled(t *testing.T) {
	s := memory.New(memory.Options{SweepInterval: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Run(ctx)
		close(done)
	}()
	cancel()
	<-done
}
