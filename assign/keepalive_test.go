package assign_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/store"
	"github.com/stickyseat/stickyseat/store/memory"
)

// fakeTable is HAProxy's table of pool "web" as the test sets it; it records what the
// agent forgets.
type fakeTable struct {
	snap      assign.TableSnapshot
	mu        sync.Mutex
	forgotten []string
}

func (f *fakeTable) Snapshot(_ context.Context, pool string) (assign.TableSnapshot, error) {
	if pool != "web" {
		return assign.TableSnapshot{}, nil
	}
	return f.snap, nil
}

func (f *fakeTable) Forget(_ context.Context, pool, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgotten = append(f.forgotten, key)
	return nil
}

func TestSyncTable(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := assign.Pool{Name: "web", Servers: []assign.Server{up("s1", 1), up("s2", 2)}, IdleTimeout: idle, DownGrace: 10 * time.Second}
	a, err := assign.New(assign.Config{Pools: []assign.Pool{p}}, memory.New(memory.Options{Clock: clock.Now}), assign.Options{Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	decide := func(key string, wantStatus assign.Status, wantServer string) {
		t.Helper()
		if d := a.Decide(ctx, assign.Request{Key: key}); d.Status != wantStatus || d.Server != wantServer {
			t.Errorf("Decide(%q) = %s %q; want %s %q", key, d.Status, d.Server, wantStatus, wantServer)
		}
	}
	sync := func(tab *fakeTable, want assign.SyncResult, wantForgotten ...string) {
		t.Helper()
		want.Forgotten = len(wantForgotten)
		got, err := a.SyncTable(ctx, tab)
		slices.Sort(tab.forgotten)
		if err != nil || got != want || !slices.Equal(tab.forgotten, wantForgotten) {
			t.Errorf("SyncTable = %+v, %v, forgot %q; want %+v, nil, forgot %q", got, err, tab.forgotten, want, wantForgotten)
		}
		tab.forgotten = nil
	}

	decide("u1", assign.StatusNew, "s1")
	decide("u2", assign.StatusNew, "s2")
	// u1 is active only through HAProxy's own routing: each pass refreshes the seat, so it
	// outlives the idle timeout and s1 stays full for a newcomer.
	tab := &fakeTable{snap: assign.TableSnapshot{Health: true, Entries: []assign.TableEntry{{Key: "u1", Server: "s1"}}}}
	for range 3 {
		clock.Advance(idle - time.Minute)
		sync(tab, assign.SyncResult{Refreshed: 1})
	}
	decide("u3", assign.StatusNew, "s2") // s1 is still u1's

	// u2 was not seen: their seat expired. HAProxy still lists them on s2 (say another node
	// let the seat go): forgotten, and the pass grants nothing.
	tab.snap.Entries = append(tab.snap.Entries, assign.TableEntry{Key: "u2", Server: "s2"}, assign.TableEntry{Key: "u9", Server: "s2"})
	sync(tab, assign.SyncResult{Refreshed: 1}, "u2", "u9")
	// A user HAProxy routes to another server than their seat's: forgotten, seat kept.
	tab.snap.Entries = []assign.TableEntry{{Key: "u3", Server: "s1"}}
	sync(tab, assign.SyncResult{Refreshed: 1}, "u3")
	decide("u3", assign.StatusHit, "s2")
	// Open connections alone refresh, and are never forgotten.
	tab.snap.Entries = []assign.TableEntry{{Key: "u3", Open: true}, {Key: "gone", Open: true}}
	sync(tab, assign.SyncResult{Refreshed: 1})

	// s1 down: kept for the grace (HAProxy refuses u1 meanwhile), forgotten after it, and
	// the agent then moves u1, as HAProxy's view reached it through the pass.
	tab.snap = assign.TableSnapshot{Health: true, Down: []string{"s1"}, Entries: []assign.TableEntry{{Key: "u1", Server: "s1"}}}
	sync(tab, assign.SyncResult{Refreshed: 1})
	clock.Advance(10*time.Second - time.Nanosecond)
	sync(tab, assign.SyncResult{Refreshed: 1})
	if got := a.ServerStates("web")["s1"]; got != assign.EffectiveDownInGrace {
		t.Errorf("s1 is %s after the passes; want down-in-grace", got)
	}
	clock.Advance(time.Nanosecond)
	sync(tab, assign.SyncResult{}, "u1")
	decide("u1", assign.StatusMoved, "s2")
}

// countingStore fails every call and counts them.
type countingStore struct {
	failingStore
	calls atomic.Int64
}

func (c *countingStore) Assign(ctx context.Context, req store.Request) (store.Result, error) {
	c.calls.Add(1)
	return c.failingStore.Assign(ctx, req)
}

func TestSyncTableStoreDown(t *testing.T) {
	st := &countingStore{}
	a, err := assign.New(assign.Config{Pools: []assign.Pool{pool(up("s1", 1))}}, st, assign.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tab := &fakeTable{}
	for i := range 1000 {
		tab.snap.Entries = append(tab.snap.Entries, assign.TableEntry{Key: fmt.Sprint("u", i), Server: "s1"})
	}
	res, err := a.SyncTable(context.Background(), tab)
	if err == nil || res != (assign.SyncResult{}) || len(tab.forgotten) != 0 {
		t.Errorf("SyncTable with the store down = %+v, %v, forgot %q; want an error and HAProxy's table left alone (known users keep their server)", res, err, tab.forgotten)
	}
	// One failed call per pass, not a burst that holds back the requests once the store is back.
	if n := st.calls.Load(); n != 1 {
		t.Errorf("SyncTable with the store down made %d store calls; want 1", n)
	}
}

// TestTouchNeverQueues: refreshing the seats of a pool with a line must not put a listed user
// who has no seat in it (they would hold a place they never asked for).
func TestTouchNeverQueues(t *testing.T) {
	ctx := context.Background()
	line := assign.Pool{Name: "web", IdleTimeout: idle, Servers: []assign.Server{up("s1", 1)},
		WhenFull: assign.WhenFullQueue, QueueTimeout: 2 * idle, QueueMax: 10}
	a, err := assign.New(assign.Config{Pools: []assign.Pool{line}}, memory.New(memory.Options{}), assign.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := a.Decide(ctx, assign.Request{Key: "u1"}); d.Status != assign.StatusNew {
		t.Fatalf("Decide(u1) = %+v; want new", d)
	}
	tab := &fakeTable{snap: assign.TableSnapshot{Entries: []assign.TableEntry{{Key: "u1", Server: "s1"}, {Key: "ghost", Server: "s1"}, {Key: "open", Open: true}}}}
	if res, err := a.SyncTable(ctx, tab); err != nil || res != (assign.SyncResult{Refreshed: 1, Forgotten: 1}) {
		t.Fatalf("SyncTable = %+v, %v; want u1 refreshed, ghost forgotten", res, err)
	}
	if d := a.Decide(ctx, assign.Request{Key: "u2"}); d.Status != assign.StatusQueued || d.Position != 1 {
		t.Errorf("Decide(u2) after the pass = %+v; want queued at 1 (nobody else in line)", d)
	}
}
