package storetest

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/store"
)

// names lists the server names of a request, as the inspection methods take them.
func names(list []store.Server) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = s.Name
	}
	return out
}

func (e *env) counts(pool string, list []string) map[string]int {
	e.t.Helper()
	got, err := e.store.LiveCounts(context.Background(), e.pool(pool), list, idle)
	if err != nil {
		e.t.Fatalf("LiveCounts(%q, %v) error: %v", pool, list, err)
	}
	return got
}

func (e *env) seats(pool string, list []string, limit int) []store.Seat {
	e.t.Helper()
	got, err := e.store.LiveSeats(context.Background(), e.pool(pool), list, idle, limit)
	if err != nil {
		e.t.Fatalf("LiveSeats(%q, %v, %d) error: %v", pool, list, limit, err)
	}
	return got
}

func (s *suite) liveCounts(t *testing.T) {
	e := s.env(t)
	list := servers(up("s1", 2), up("s2", 2))
	e.assign("", "u1", list) // s1
	e.assign("", "u2", list) // s2
	e.assign("", "u3", list) // s1
	e.assign("other", "v1", list)
	if got, want := e.counts("", names(list)), map[string]int{"s1": 2, "s2": 1}; !maps.Equal(got, want) {
		t.Errorf("LiveCounts = %v; want %v", got, want)
	}
	if got, want := e.counts("", []string{"s2"}), map[string]int{"s2": 1}; !maps.Equal(got, want) {
		t.Errorf("LiveCounts(only s2) = %v; want %v (unlisted servers are not counted)", got, want)
	}
	if got := e.counts("nobody", names(list)); len(got) != 0 {
		t.Errorf("LiveCounts(unused pool) = %v; want empty", got)
	}
	e.clock.Advance(idle - time.Microsecond)
	if got, want := e.counts("", names(list)), map[string]int{"s1": 2, "s2": 1}; !maps.Equal(got, want) {
		t.Errorf("LiveCounts just before expiry = %v; want %v", got, want)
	}
	e.clock.Advance(time.Microsecond)
	if got := e.counts("", names(list)); len(got) != 0 {
		t.Errorf("LiveCounts at expiry = %v; want empty (a seat is free exactly idle after its last refresh)", got)
	}
}

func (s *suite) liveSeats(t *testing.T) {
	e := s.env(t)
	list := servers(up("s1", 2), up("s2", 2))
	t0 := e.clock.Now()
	for _, key := range []string{"u1", "u2", "u3"} { // s1, s2, s1, one second apart
		e.assign("", key, list)
		e.clock.Advance(time.Second)
	}
	seat := func(key, server string, at time.Duration) store.Seat {
		last := t0.Add(at)
		return store.Seat{Key: key, Server: server, LastSeen: last, Expires: last.Add(idle)}
	}
	all := []store.Seat{seat("u3", "s1", 2*time.Second), seat("u2", "s2", time.Second), seat("u1", "s1", 0)}
	for _, tt := range []struct {
		name  string
		list  []string
		limit int
		want  []store.Seat
	}{
		{"all, most recent first", names(list), 10, all},
		{"limit is over every server", names(list), 2, all[:2]},
		{"limit one", names(list), 1, all[:1]},
		{"limit zero returns none", names(list), 0, nil},
		{"negative limit returns none", names(list), -1, nil},
		{"only listed servers", []string{"s1"}, 10, []store.Seat{all[0], all[2]}},
	} {
		got := e.seats("", tt.list, tt.limit)
		if !seatsEqual(got, tt.want) {
			t.Errorf("%s: LiveSeats(%v, %d) = %v; want %v", tt.name, tt.list, tt.limit, got, tt.want)
		}
	}
	e.clock.Advance(idle - 3*time.Second) // now t0+idle: u1 expires exactly now, u2 and u3 later
	if got, want := e.seats("", names(list), 10), all[:2]; !seatsEqual(got, want) {
		t.Errorf("LiveSeats after u1 expired = %v; want %v", got, want)
	}
}

func seatsEqual(a, b []store.Seat) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || a[i].Server != b[i].Server || !a[i].LastSeen.Equal(b[i].LastSeen) || !a[i].Expires.Equal(b[i].Expires) {
			return false
		}
	}
	return true
}

func (s *suite) liveSeat(t *testing.T) {
	e := s.env(t)
	list := servers(up("s1", 2))
	t0 := e.clock.Now()
	e.assign("", "u1", list)
	e.clock.Advance(time.Second)
	ctx := context.Background()
	got, ok, err := e.store.LiveSeat(ctx, e.pool(""), "u1", idle)
	want := store.Seat{Key: "u1", Server: "s1", LastSeen: t0, Expires: t0.Add(idle)}
	if err != nil || !ok || !seatsEqual([]store.Seat{got}, []store.Seat{want}) {
		t.Errorf("LiveSeat(u1) = %v, %v, %v; want %v, true, nil", got, ok, err, want)
	}
	if got, ok, err := e.store.LiveSeat(ctx, e.pool(""), "nobody", idle); err != nil || ok {
		t.Errorf("LiveSeat(nobody) = %v, %v, %v; want no seat, no error", got, ok, err)
	}
	e.clock.Advance(idle - time.Second)
	if got, ok, err := e.store.LiveSeat(ctx, e.pool(""), "u1", idle); err != nil || ok {
		t.Errorf("LiveSeat(u1) at expiry = %v, %v, %v; want no seat", got, ok, err)
	}
}

func (s *suite) evict(t *testing.T) {
	e := s.env(t)
	list := servers(up("s1", 1))
	ctx := context.Background()
	e.assign("", "u1", list)
	if got := e.assign("", "u2", list); got != full() {
		t.Fatalf("Assign(u2) = %+v; want full", got)
	}
	if ok, err := e.store.Evict(ctx, e.pool(""), "u1"); err != nil || !ok {
		t.Fatalf("Evict(u1) = %v, %v; want true, nil", ok, err)
	}
	if ok, err := e.store.Evict(ctx, e.pool(""), "u1"); err != nil || ok {
		t.Errorf("Evict(u1) again = %v, %v; want false, nil", ok, err)
	}
	if got := e.counts("", names(list)); len(got) != 0 {
		t.Errorf("LiveCounts after evict = %v; want empty (the seat is free at once)", got)
	}
	if got := e.assign("", "u2", list); got != granted("s1") {
		t.Errorf("Assign(u2) after evicting u1 = %+v; want %+v", got, granted("s1"))
	}
	if got := e.assign("", "u1", list); got != full() {
		t.Errorf("Assign(u1) after its eviction = %+v; want full (an evicted user is a newcomer)", got)
	}
	if ok, err := e.store.Evict(ctx, e.pool("never used"), "u1"); err != nil || ok {
		t.Errorf("Evict in an unused pool = %v, %v; want false, nil", ok, err)
	}
}

// overrides are keyed "pool/server"; the suite's fields start with the subtest's pool prefix
// so that stores sharing a backend (one Redis) do not see each other's.
func (s *suite) overrides(t *testing.T) {
	e := s.env(t)
	ctx := context.Background()
	f1, f2 := e.pool("")+"/s1", e.pool("")+"/s2"
	mine := func() map[string]string {
		t.Helper()
		all, err := e.store.Overrides(ctx)
		if err != nil {
			t.Fatalf("Overrides() error: %v", err)
		}
		out := map[string]string{}
		for k, v := range all {
			if strings.HasPrefix(k, e.pool("")+"/") {
				out[k] = v
			}
		}
		return out
	}
	for _, c := range []struct{ field, value string }{{f1, "state=drain"}, {f2, "quota=5"}, {f1, "state=drain,quota=3"}} {
		if err := e.store.SetOverride(ctx, c.field, c.value); err != nil {
			t.Fatalf("SetOverride(%q, %q) error: %v", c.field, c.value, err)
		}
	}
	if got, want := mine(), map[string]string{f1: "state=drain,quota=3", f2: "quota=5"}; !maps.Equal(got, want) {
		t.Errorf("Overrides() = %v; want %v", got, want)
	}
	got := mine()
	got[f2] = "changed by the caller"
	if err := e.store.SetOverride(ctx, f1, ""); err != nil {
		t.Fatalf("SetOverride(%q, \"\") error: %v", f1, err)
	}
	if got, want := mine(), map[string]string{f2: "quota=5"}; !maps.Equal(got, want) {
		t.Errorf("Overrides() after clearing %s = %v; want %v (and the caller's map is its own)", f1, got, want)
	}
}
