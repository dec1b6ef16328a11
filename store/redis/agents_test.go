package redis

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/store"
)

// call is one answer of a store, with the window of agent time (since a common base) in which
// Redis made the decision: the seat, if any, was refreshed at some instant in [start, end].
type call struct {
	user       int
	result     store.Result
	start, end time.Duration
}

// checkCalls returns one message per violation it can prove from answers given while every
// server stays listed and accepting. It only knows each refresh up to its call's window, and
// allows margin for the Redis and agent clocks running at slightly different rates:
//
//   - Two answers of one user on different servers imply refreshes at least idle apart (the
//     first seat had to expire before the user could get another). If the windows put them
//     less than idle-margin apart whichever way they are ordered, a live seat was moved.
//   - An answer with a seat proves the seat live at least over [end, start+idle): refreshed no
//     later than end, expiring no earlier than start+idle. Counting, at each instant, the
//     distinct users a server holds by these intervals (shrunk by margin) undercounts its
//     live seats, so a count above quota is a real violation.
func checkCalls(calls []call, quota map[string]int, idle, margin time.Duration) []string {
	var problems []string
	byUser := make(map[int][]call)
	for _, c := range calls {
		if c.result.Server != "" {
			byUser[c.user] = append(byUser[c.user], c)
		}
	}
	// live[server][user] lists the intervals over which the user's seat was certainly live.
	live := make(map[string]map[int][][2]time.Duration)
	for _, user := range slices.Sorted(maps.Keys(byUser)) {
		cs := byUser[user]
		slices.SortFunc(cs, func(a, b call) int { return cmp.Compare(a.start, b.start) })
		for i, a := range cs {
			for _, b := range cs[i+1:] {
				if b.start-a.start >= idle-margin {
					break // b and every later answer may be idle after a
				}
				if a.result.Server != b.result.Server && max(b.end-a.start, a.end-b.start) < idle-margin {
					problems = append(problems, fmt.Sprintf("user %d: answered %s in [%v, %v] and %s in [%v, %v], less than idle %v apart",
						user, a.result.Server, a.start, a.end, b.result.Server, b.start, b.end, idle))
				}
			}
			from, to := a.end+margin, a.start+idle-margin
			if from >= to {
				continue
			}
			if live[a.result.Server] == nil {
				live[a.result.Server] = make(map[int][][2]time.Duration)
			}
			live[a.result.Server][user] = append(live[a.result.Server][user], [2]time.Duration{from, to})
		}
	}
	for _, server := range slices.Sorted(maps.Keys(live)) {
		type event struct {
			at    time.Duration
			delta int
		}
		var events []event
		for _, intervals := range live[server] {
			for _, iv := range merge(intervals) {
				events = append(events, event{iv[0], +1}, event{iv[1], -1})
			}
		}
		// Intervals are half-open: at equal instants, ends come before starts.
		slices.SortFunc(events, func(a, b event) int {
			return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.delta, b.delta))
		})
		n := 0
		for _, e := range events {
			n += e.delta
			if n > quota[server] {
				problems = append(problems, fmt.Sprintf("server %s: %d users certainly live at %v; quota %d", server, n, e.at, quota[server]))
				break
			}
		}
	}
	return problems
}

// merge returns the union of half-open intervals, sorted.
func merge(ivs [][2]time.Duration) [][2]time.Duration {
	slices.SortFunc(ivs, func(a, b [2]time.Duration) int { return cmp.Compare(a[0], b[0]) })
	var out [][2]time.Duration
	for _, iv := range ivs {
		if n := len(out); n > 0 && iv[0] <= out[n-1][1] {
			out[n-1][1] = max(out[n-1][1], iv[1])
			continue
		}
		out = append(out, iv)
	}
	return out
}

// TestCheckCalls shows that checkCalls accepts a correct history and catches each kind of
// violation it claims to catch.
func TestCheckCalls(t *testing.T) {
	const idle, margin = 300 * time.Millisecond, 20 * time.Millisecond
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	seat := func(user int, server string, start, end int) call {
		return call{user: user, result: store.Result{Outcome: store.OutcomeNew, Server: server}, start: ms(start), end: ms(end)}
	}
	quota := map[string]int{"s1": 1, "s2": 1}
	tests := []struct {
		name  string
		calls []call
		want  int // problems
	}{
		{"correct", []call{seat(1, "s1", 0, 1), seat(2, "s2", 0, 1), seat(1, "s1", 100, 101), seat(2, "s1", 450, 451)}, 0},
		{"moved after expiry", []call{seat(1, "s1", 0, 1), seat(1, "s2", 302, 303)}, 0},
		{"moved while live", []call{seat(1, "s1", 0, 1), seat(1, "s2", 200, 201)}, 1},
		{"moved, overlapping windows", []call{seat(1, "s1", 0, 100), seat(1, "s2", 50, 60)}, 1},
		{"slow calls prove nothing", []call{seat(1, "s1", 0, 100), seat(1, "s2", 250, 310)}, 0},
		{"over quota", []call{seat(1, "s1", 0, 1), seat(2, "s1", 100, 101)}, 1},
		{"over quota after a refresh", []call{seat(1, "s1", 0, 1), seat(1, "s1", 250, 251), seat(2, "s1", 320, 321)}, 1},
		{"quota reused after expiry", []call{seat(1, "s1", 0, 1), seat(2, "s1", 301, 302)}, 0},
		{"full answers hold nothing", []call{seat(1, "s1", 0, 1), {user: 2, result: store.Result{Outcome: store.OutcomeFull}, start: ms(5), end: ms(6)}}, 0},
	}
	for _, tt := range tests {
		if got := checkCalls(tt.calls, quota, idle, margin); len(got) != tt.want {
			t.Errorf("%s: checkCalls = %q; want %d problems", tt.name, got, tt.want)
		}
	}
}

// TestAgentsShareSeats runs three agents (stores with their own clients) against one Redis,
// on Redis time, with many goroutines each, idle short enough that seats expire and are
// regranted during the run, and checks the answers with checkCalls. The hit cache is off so
// that every answer is a Redis decision.
func TestAgentsShareSeats(t *testing.T) {
	const (
		agents   = 3
		users    = 20_000
		hotUsers = 600 // 70% of requests: so that users come back while their seat is live
		quota    = 100
		idle     = 300 * time.Millisecond
		margin   = 20 * time.Millisecond
	)
	goroutines, duration := 32, 3*time.Second
	if testing.Short() {
		goroutines, duration = 8, time.Second
	}
	srv := startRedis(t)
	servers := []store.Server{{Name: "s1", Quota: quota, Accepting: true}, {Name: "s2", Quota: quota, Accepting: true},
		{Name: "s3", Quota: quota, Accepting: true}}
	quotas := map[string]int{"s1": quota, "s2": quota, "s3": quota}
	stores := make([]*Store, agents)
	for i := range stores {
		stores[i] = New(newClient(t, srv.URL()), Options{RefreshInterval: -1, Timeout: 5 * time.Second})
	}
	keys := make([]string, users)
	for i := range keys {
		keys[i] = "user-" + strconv.Itoa(i)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d agents × %d goroutines for %v", seed, agents, goroutines, duration)

	base := time.Now()
	stop := base.Add(duration)
	logs := make([][]call, agents*goroutines)
	var wg sync.WaitGroup
	for g := range logs {
		s := stores[g%agents]
		rng := rand.New(rand.NewPCG(seed, uint64(g)))
		wg.Go(func() {
			for time.Now().Before(stop) {
				user := rng.IntN(users)
				if rng.IntN(10) < 7 {
					user = rng.IntN(hotUsers)
				}
				req := store.Request{Pool: "agents", Key: keys[user], Servers: servers, Idle: idle}
				start := time.Since(base)
				res, err := s.Assign(context.Background(), req)
				end := time.Since(base)
				if err != nil {
					t.Errorf("Assign(%q) error: %v", keys[user], err)
					return
				}
				logs[g] = append(logs[g], call{user: user, result: res, start: start, end: end})
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	calls := slices.Concat(logs...)
	outcomes := make(map[store.Outcome]int)
	for _, c := range calls {
		outcomes[c.result.Outcome]++
	}
	t.Logf("%d calls: %d hit, %d new, %d full", len(calls), outcomes[store.OutcomeHit], outcomes[store.OutcomeNew], outcomes[store.OutcomeFull])
	for i, p := range checkCalls(calls, quotas, idle, margin) {
		if i == 20 {
			t.Errorf("more problems")
			break
		}
		t.Error(p)
	}
	// More grants than seats: seats expired and were given again during the run.
	if outcomes[store.OutcomeNew] <= 3*quota || outcomes[store.OutcomeHit] == 0 || outcomes[store.OutcomeFull] == 0 {
		t.Errorf("outcomes %v: want more than %d new, and some hit and full, or the run proved little", outcomes, 3*quota)
	}
}
