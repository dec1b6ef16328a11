package storetest

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/stickyseat/stickyseat/store"
)

// answer is one recorded reply of the store.
type answer struct {
	user   int
	result store.Result
}

// held is the seat the model believes a user holds.
type held struct {
	server    string
	refreshed time.Time
}

// model is what a correct store must hold, rebuilt from recorded answers phase by phase.
//
// Within a phase the clock is fixed and every server stays listed and accepting, so no seat
// expires or is released: the set of live seats only grows. Hence, for a correct store and a
// user in one phase:
//   - a seat live at the start of the phase (per the model) answers hit on its server, always;
//   - otherwise the user's first answer in linear order is new or full. After new, the rest
//     are hits on the same server. After full, every server was at quota and stays so for the
//     rest of the phase: the rest are full too.
//
// And across users: no server ends a phase with more distinct live users than its quota,
// and if anyone was told full, every server ends the phase exactly at quota (a store that
// still counts an expired seat is caught here).
type model struct {
	quota map[string]int
	idle  time.Duration
	seats map[int]held
}

func newModel(list []store.Server, idle time.Duration) *model {
	m := &model{quota: make(map[string]int), idle: idle, seats: make(map[int]held)}
	for _, sv := range list {
		m.quota[sv.Name] = sv.Quota
	}
	return m
}

// tally sums up one user's answers in one phase.
type tally struct {
	servers        []string // distinct servers answered, in order of first appearance
	hit, new, full int
	unexpected     []store.Result
}

func (t *tally) add(r store.Result) {
	ok := r.Previous == ""
	switch r.Outcome {
	case store.OutcomeHit:
		t.hit++
		ok = ok && r.Server != ""
	case store.OutcomeNew:
		t.new++
		ok = ok && r.Server != ""
	case store.OutcomeFull:
		t.full++
		ok = ok && r.Server == ""
	default: // moved is impossible: every server stays listed
		ok = false
	}
	if !ok {
		t.unexpected = append(t.unexpected, r)
		return
	}
	if r.Server != "" && !slices.Contains(t.servers, r.Server) {
		t.servers = append(t.servers, r.Server)
	}
}

// check checks one phase's answers, all given at time now, and folds them into the model.
// It returns one message per violation.
func (m *model) check(now time.Time, logs [][]answer) []string {
	tallies := make(map[int]*tally)
	for _, log := range logs {
		for _, a := range log {
			tl := tallies[a.user]
			if tl == nil {
				tl = &tally{}
				tallies[a.user] = tl
			}
			tl.add(a.result)
		}
	}
	users := slices.Sorted(maps.Keys(tallies))

	var problems []string
	report := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	// occupants holds, per server, the distinct users live on it at the end of the phase.
	occupants := make(map[string]map[int]bool)
	occupy := func(server string, u int) {
		if occupants[server] == nil {
			occupants[server] = make(map[int]bool)
		}
		occupants[server][u] = true
	}
	for u, h := range m.seats {
		if m.live(h, now) {
			occupy(h.server, u)
		}
	}
	anyFull := false
	for _, u := range users {
		tl := tallies[u]
		anyFull = anyFull || tl.full > 0
		for _, r := range tl.unexpected {
			report("user %d: answer %+v is malformed or impossible with every server listed", u, r)
		}
		for _, server := range tl.servers {
			if _, ok := m.quota[server]; !ok {
				report("user %d: answered unknown server %q", u, server)
			}
		}
		if len(tl.servers) > 1 {
			report("user %d: answered servers %v in one phase", u, tl.servers)
		}
		h, ok := m.seats[u]
		switch live := ok && m.live(h, now); {
		case live && (tl.new > 0 || tl.full > 0 || len(tl.servers) != 1 || tl.servers[0] != h.server):
			report("user %d: seat on %s refreshed %v before is live, yet answered servers %v with %d hit, %d new, %d full",
				u, h.server, now.Sub(h.refreshed), tl.servers, tl.hit, tl.new, tl.full)
		case !live && tl.new+tl.hit > 0 && tl.new != 1:
			report("user %d: no live seat at the start of the phase, yet answered %d new and %d hit (want exactly 1 new before hits)",
				u, tl.new, tl.hit)
		case !live && tl.new > 0 && tl.full > 0:
			report("user %d: answered both new (%v) and full in one phase, though no seat is freed within a phase",
				u, tl.servers)
		}
		if len(tl.servers) > 0 {
			occupy(tl.servers[0], u)
		}
	}
	for _, server := range slices.Sorted(maps.Keys(m.quota)) {
		n, quota := len(occupants[server]), m.quota[server]
		if n > quota {
			report("server %s: %d distinct live users; quota %d", server, n, quota)
		}
		if anyFull && n < quota {
			report("server %s: someone was told full, yet it holds only %d live users of %d", server, n, quota)
		}
	}

	for _, u := range users {
		tl := tallies[u]
		if len(tl.servers) > 0 {
			m.seats[u] = held{server: tl.servers[0], refreshed: now}
		} else {
			delete(m.seats, u)
		}
	}
	return problems
}

// live reports whether a seat is live at now: it expires exactly idle after its refresh.
func (m *model) live(h held, now time.Time) bool {
	return now.Before(h.refreshed.Add(m.idle))
}
