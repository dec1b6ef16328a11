package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/store"
)

// lineTimeout is the suite's line timeout: longer than idle, so that places outlive seats.
const lineTimeout = 30 * time.Second

func queued(position int) store.Result {
	return store.Result{Outcome: store.OutcomeQueued, Position: position}
}

func queuedWait(position int, wait time.Duration) store.Result {
	return store.Result{Outcome: store.OutcomeQueued, Position: position, Wait: wait}
}

func grantedAfter(server string, waited time.Duration) store.Result {
	return store.Result{Outcome: store.OutcomeNew, Server: server, Waited: waited}
}

// withLine sets the line q on every step of a script.
func withLine(q store.Queue, steps ...step) []step {
	for i := range steps {
		steps[i].queue = q
	}
	return steps
}

func (s *suite) line(t *testing.T) {
	q := store.Queue{Timeout: lineTimeout, Max: 3}
	one := servers(up("s1", 1))
	two := servers(up("s1", 2))
	none := servers(up("s1", 0)) // a quota of zero: never a free seat
	s.play(t, []scenario{
		{"positions; a freed seat goes to the head even when the tail asks first", withLine(q,
			step{key: "u1", servers: two, want: granted("s1")},
			step{after: time.Second, key: "u2", servers: two, want: granted("s1")},
			step{key: "u3", servers: two, want: queued(1)},
			step{key: "u4", servers: two, want: queued(2)},
			step{key: "u5", servers: two, want: queued(3)},
			step{key: "u3", servers: two, want: queued(1)},
			// u1 expires: one seat free, which is u3's whoever asks first.
			step{after: idle - time.Second, key: "u5", servers: two, want: queued(3)},
			step{key: "u4", servers: two, want: queued(2)},
			step{key: "u3", servers: two, want: grantedAfter("s1", idle-time.Second)},
			step{key: "u4", servers: two, want: queued(1)},
			step{key: "u5", servers: two, want: queued(2)},
			step{key: "u3", servers: two, want: hit("s1")},
		)},
		{"the line holds at most Max places; then newcomers are full", withLine(q,
			step{key: "u1", servers: one, want: granted("s1")},
			step{key: "u2", servers: one, want: queued(1)},
			step{key: "u3", servers: one, want: queued(2)},
			step{key: "u4", servers: one, want: queued(3)},
			step{key: "u5", servers: one, want: full()},
			step{key: "u4", servers: one, want: queued(3)},
		)},
		{"a newcomer gets a seat only when free seats outnumber the places", withLine(q,
			step{key: "u1", servers: two, want: granted("s1")},
			step{after: time.Second, key: "u2", servers: two, want: granted("s1")},
			step{key: "u3", servers: two, want: queued(1)},
			// u1 expires: 1 free seat, 1 place: the newcomer u4 may not take u3's seat.
			step{after: idle - time.Second, key: "u4", servers: two, want: queued(2)},
			step{key: "u5", servers: two, want: queued(3)},
			step{key: "u3", servers: two, want: grantedAfter("s1", idle-time.Second)},
			step{key: "u4", servers: two, want: queued(1)},
			step{after: time.Second, key: "u5", servers: two, want: queued(2)}, // u2 expired
			step{key: "u4", servers: two, want: grantedAfter("s1", time.Second)},
			step{key: "u6", servers: two, want: queuedWait(2, 2*time.Second)}, // seats from the line 1s apart
		)},
		{"a place lapses exactly lineTimeout after its last request; back at the end", withLine(q,
			step{key: "u2", servers: none, want: queued(1)},
			step{after: time.Second, key: "u3", servers: none, want: queued(2)},
			step{after: lineTimeout - time.Second - time.Microsecond, key: "u3", servers: none, want: queued(2)},
			step{after: time.Microsecond, key: "u3", servers: none, want: queued(1)},
			step{key: "u2", servers: none, want: queued(2)},
		)},
		{"a raised quota admits the head first", withLine(q,
			step{key: "u1", servers: one, want: granted("s1")},
			step{key: "u2", servers: one, want: queued(1)},
			step{key: "u3", servers: one, want: queued(2)},
			step{after: time.Second, key: "u3", servers: two, want: queued(2)},
			step{key: "u2", servers: two, want: grantedAfter("s1", time.Second)},
			step{key: "u3", servers: two, want: queued(1)},
		)},
		{"a new server admits the head first", withLine(q,
			step{key: "u1", servers: one, want: granted("s1")},
			step{key: "u2", servers: one, want: queued(1)},
			step{key: "u3", servers: one, want: queued(2)},
			step{key: "u3", servers: servers(up("s1", 1), up("s2", 1)), want: queued(2)},
			step{key: "u2", servers: servers(up("s1", 1), up("s2", 1)), want: grantedAfter("s2", 0)},
		)},
		{"a draining server's room is not free", withLine(q,
			step{key: "u1", servers: two, want: granted("s1")},
			step{key: "u2", servers: servers(draining("s1", 2), up("s2", 1)), want: granted("s2")},
			step{key: "u3", servers: servers(draining("s1", 2), up("s2", 1)), want: queued(1)},
		)},
		{"a user whose server left the list queues, releasing the old seat", withLine(q,
			step{key: "u1", servers: servers(up("s1", 1), up("s2", 1)), want: granted("s1")},
			step{key: "u2", servers: servers(up("s1", 1), up("s2", 1)), want: granted("s2")},
			step{key: "u1", servers: servers(up("s2", 1)), want: store.Result{Outcome: store.OutcomeQueued, Position: 1, Previous: "s1"}},
		)},
		{"the wait is the position times the recent interval between seats from the line",
			withLine(store.Queue{Timeout: lineTimeout, Max: 10},
				step{key: "u1", servers: one, want: granted("s1")},
				step{key: "u2", servers: one, want: queued(1)},
				step{key: "u3", servers: one, want: queued(2)},
				step{key: "u4", servers: one, want: queued(3)},
				step{after: idle, key: "u2", servers: one, want: grantedAfter("s1", idle)},
				step{key: "u3", servers: one, want: queued(1)}, // one seat from the line: no interval yet
				step{after: idle, key: "u3", servers: one, want: grantedAfter("s1", 2*idle)},
				step{key: "u4", servers: one, want: queuedWait(1, idle)},
				step{key: "u5", servers: one, want: queuedWait(2, 2*idle)},
			)},
		{"with the line off a full pool answers full, as always", []step{
			{key: "u1", servers: one, want: granted("s1")},
			{key: "u2", servers: one, want: full()},
			{key: "u2", servers: one, want: full()},
		}},
	})
	t.Run("invalid line", func(t *testing.T) {
		e := s.env(t)
		for _, q := range []store.Queue{{Timeout: 0, Max: 1}, {Timeout: -time.Second, Max: 1}, {Timeout: time.Second, Max: -1}} {
			req := store.Request{Pool: e.pool(""), Key: "u", Servers: one, Idle: idle, Queue: q}
			if _, err := e.store.Assign(context.Background(), req); err == nil {
				t.Errorf("Assign with line %+v: no error; want one wrapping ErrInvalidRequest", q)
			}
		}
	})
}

// lineMassLapse: after more than store.LapseLimit places lapse at once, each call removes at
// most that many; the rest still count ahead until later calls remove them.
func (s *suite) lineMassLapse(t *testing.T) {
	e := s.env(t)
	const extra = 10
	q := store.Queue{Timeout: lineTimeout, Max: store.LapseLimit + extra + 1}
	none := servers(up("s1", 0))
	for i := range store.LapseLimit + extra {
		if got := e.assignQ("", "gone-"+strconv.Itoa(i), none, q); got != queued(i+1) {
			t.Fatalf("Assign(gone-%d) = %+v; want %+v", i, got, queued(i+1))
		}
	}
	e.clock.Advance(lineTimeout)
	// The first call removes LapseLimit places; the extra ones still stand ahead of u.
	if got := e.assignQ("", "u", none, q); got != queued(extra+1) {
		t.Errorf("Assign(u) after a mass lapse = %+v; want %+v (%d lapsed places removed per call)", got, queued(extra+1), store.LapseLimit)
	}
	if got := e.assignQ("", "u", none, q); got != queued(1) {
		t.Errorf("Assign(u) again = %+v; want %+v (the rest removed)", got, queued(1))
	}
	l, err := e.store.Line(context.Background(), e.pool(""), lineTimeout, 0)
	if err != nil || l.Length != 1 || l.Lapsed != store.LapseLimit+extra {
		t.Errorf("Line() = %+v, %v; want 1 place and %d lapsed", l, err, store.LapseLimit+extra)
	}
}

func (s *suite) lineInspection(t *testing.T) {
	e := s.env(t)
	ctx := context.Background()
	q := store.Queue{Timeout: lineTimeout, Max: 10}
	one := servers(up("s1", 1))
	t0 := e.clock.Now()
	e.assignQ("", "u1", one, q)
	for _, key := range []string{"u2", "u3", "u4"} {
		if got := e.assignQ("", key, one, q); got.Outcome != store.OutcomeQueued {
			t.Fatalf("Assign(%s) = %+v; want queued", key, got)
		}
		e.clock.Advance(time.Second)
	}
	line := func(limit int) store.Line {
		t.Helper()
		l, err := e.store.Line(ctx, e.pool(""), lineTimeout, limit)
		if err != nil {
			t.Fatalf("Line(%d) error: %v", limit, err)
		}
		return l
	}
	got := line(2)
	want := store.Line{Length: 3, Head: []store.Place{
		{Key: "u2", Position: 1, Joined: t0, LastSeen: t0, Lapses: t0.Add(lineTimeout)},
		{Key: "u3", Position: 2, Joined: t0.Add(time.Second), LastSeen: t0.Add(time.Second), Lapses: t0.Add(time.Second + lineTimeout)},
	}}
	if !linesEqual(got, want) {
		t.Errorf("Line(2) = %+v; want %+v", got, want)
	}
	if got := line(0); got.Length != 3 || len(got.Head) != 0 {
		t.Errorf("Line(0) = %+v; want length 3 and no places", got)
	}
	if ok, err := e.store.Evict(ctx, e.pool(""), "u3"); err != nil || !ok {
		t.Errorf("Evict(u3), a place = %v, %v; want true, nil", ok, err)
	}
	if got := e.assignQ("", "u4", one, q); got != queued(2) {
		t.Errorf("Assign(u4) after evicting u3 = %+v; want %+v", got, queued(2))
	}
	e.clock.Advance(lineTimeout - 3*time.Second) // u2's place lapses now; u4 asked just now
	if got := line(10); got.Length != 1 || got.Lapsed != 1 || len(got.Head) != 1 || got.Head[0].Key != "u4" {
		t.Errorf("Line after u2 lapsed = %+v; want only u4, one lapsed", got)
	}
	if got := line(10); got.Lapsed != 1 {
		t.Errorf("Line read twice: lapsed %d; want 1 (a lapse counts once)", got.Lapsed)
	}
	if l, err := e.store.Line(ctx, e.pool("never used"), lineTimeout, 10); err != nil || l.Length != 0 || len(l.Head) != 0 {
		t.Errorf("Line(unused pool) = %+v, %v; want empty", l, err)
	}
}

func linesEqual(a, b store.Line) bool {
	return a.Length == b.Length && a.Lapsed == b.Lapsed && slices.EqualFunc(a.Head, b.Head, func(x, y store.Place) bool {
		return x.Key == y.Key && x.Position == y.Position && x.Joined.Equal(y.Joined) && x.LastSeen.Equal(y.LastSeen) && x.Lapses.Equal(y.Lapses)
	})
}

// lineConcurrency: users join a full pool from many goroutines at once, then seats free one
// at a time while every waiting user asks over and over in random order. Each freed seat must
// go to the earliest place still held, and no quota may be exceeded.
func (s *suite) lineConcurrency(t *testing.T) {
	e := s.env(t)
	ctx := context.Background()
	const quota, users = 4, 24
	list := servers(up("s1", quota/2), up("s2", quota/2))
	q := store.Queue{Timeout: lineTimeout, Max: users}
	ask := func(key string) (store.Result, error) {
		return e.store.Assign(ctx, store.Request{Pool: e.pool(""), Key: key, Servers: list, Idle: idle, Queue: q})
	}
	seated := make([]string, 0, quota)
	for i := range quota {
		key := "seated-" + strconv.Itoa(i)
		if r, err := ask(key); err != nil || r.Server == "" {
			t.Fatalf("Assign(%s) = %+v, %v; want a seat", key, r, err)
		}
		seated = append(seated, key)
	}

	// Join: every user at once. Their positions must be 1..users, each once.
	joined := make([]int, users) // user -> position at join
	var wg sync.WaitGroup
	errs := make(chan error, users)
	for u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := ask("w" + strconv.Itoa(u))
			if err != nil || r.Outcome != store.OutcomeQueued {
				errs <- fmt.Errorf("join w%d = %+v, %v; want queued", u, r, err)
				return
			}
			joined[u] = r.Position
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	order := make([]int, users) // position-1 -> user
	seen := make([]bool, users)
	for u, p := range joined {
		if p < 1 || p > users || seen[p-1] {
			t.Fatalf("positions at join = %v; want each of 1..%d once", joined, users)
		}
		seen[p-1] = true
		order[p-1] = u
	}

	// Free one seat at a time; everyone waiting asks until someone is seated.
	rng := rand.New(rand.NewPCG(1, 2))
	waiting := slices.Clone(order)
	for round := 0; len(waiting) > 0; round++ {
		victim := seated[0]
		seated = seated[1:]
		if ok, err := e.store.Evict(ctx, e.pool(""), victim); err != nil || !ok {
			t.Fatalf("round %d: Evict(%s) = %v, %v", round, victim, ok, err)
		}
		admitted := make(chan int, len(waiting))
		asks := slices.Clone(waiting)
		rng.Shuffle(len(asks), func(i, j int) { asks[i], asks[j] = asks[j], asks[i] })
		var wg sync.WaitGroup
		for _, u := range asks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := ask("w" + strconv.Itoa(u))
				switch {
				case err != nil:
					t.Errorf("round %d: Assign(w%d) error: %v", round, u, err)
				case r.Server != "":
					admitted <- u
				case r.Outcome != store.OutcomeQueued:
					t.Errorf("round %d: Assign(w%d) = %+v; want a seat or a place", round, u, r)
				}
			}()
		}
		wg.Wait()
		close(admitted)
		var got []int
		for u := range admitted {
			got = append(got, u)
		}
		if len(got) != 1 || got[0] != waiting[0] {
			t.Fatalf("round %d: seated %v; want exactly w%d, the head of the line", round, got, waiting[0])
		}
		seated = append(seated, "w"+strconv.Itoa(got[0]))
		waiting = waiting[1:]
		counts, err := e.store.LiveCounts(ctx, e.pool(""), names(list), idle)
		if err != nil {
			t.Fatal(err)
		}
		if counts["s1"] > quota/2 || counts["s2"] > quota/2 || counts["s1"]+counts["s2"] != quota {
			t.Fatalf("round %d: seats %v; want %d on each server", round, counts, quota/2)
		}
	}
}
