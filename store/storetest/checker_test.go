package storetest

import (
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/store"
)

// TestModelCheck feeds the concurrency checker answer logs from correct and from broken
// stores: it must accept the first and reject each of the others.
func TestModelCheck(t *testing.T) {
	list := servers(up("s1", 1), up("s2", 2))
	now := start.Add(time.Hour)
	liveSince := now.Add(-idle + 1) // refreshed idle-1ns ago: live
	expiredSince := now.Add(-idle)  // refreshed exactly idle ago: expired
	tests := []struct {
		name        string
		seats       map[int]held // the model before the phase
		logs        [][]answer
		wantProblem bool
	}{
		{"correct phase", map[int]held{1: {"s1", liveSince}, 2: {"s2", expiredSince}},
			[][]answer{
				{{1, hit("s1")}, {2, granted("s2")}, {3, full()}},
				{{3, full()}, {2, hit("s2")}, {4, granted("s2")}, {1, hit("s1")}},
			}, false},
		{"nothing asked", map[int]held{1: {"s1", liveSince}}, nil, false},
		{"over-granted", nil,
			[][]answer{{{1, granted("s1")}}, {{2, granted("s1")}}}, true},
		{"live seat from an earlier phase counts toward the quota", map[int]held{1: {"s1", liveSince}},
			[][]answer{{{2, granted("s1")}}}, true},
		{"user answered two servers", nil,
			[][]answer{{{1, granted("s1")}}, {{1, hit("s2")}}}, true},
		{"seat granted twice", nil,
			[][]answer{{{1, granted("s2")}}, {{1, granted("s2")}}}, true},
		{"hit without a seat", nil,
			[][]answer{{{1, hit("s2")}}}, true},
		{"hit on a seat expired at the boundary", map[int]held{1: {"s1", expiredSince}},
			[][]answer{{{1, hit("s1")}}}, true},
		{"live user moved to another server", map[int]held{1: {"s1", liveSince}},
			[][]answer{{{1, granted("s2")}}}, true},
		{"live user regranted on its server", map[int]held{1: {"s1", liveSince}},
			[][]answer{{{1, granted("s1")}}}, true},
		{"live user told full", map[int]held{1: {"s1", liveSince}, 2: {"s2", liveSince}, 3: {"s2", liveSince}},
			[][]answer{{{1, full()}}}, true},
		{"full with room left", map[int]held{1: {"s1", liveSince}, 2: {"s2", liveSince}},
			[][]answer{{{3, full()}}}, true},
		{"full because an expired seat still counts", map[int]held{1: {"s1", liveSince}, 2: {"s2", liveSince}, 3: {"s2", expiredSince}},
			[][]answer{{{4, full()}}}, true},
		{"new and full for one user", map[int]held{1: {"s1", liveSince}, 2: {"s2", liveSince}},
			[][]answer{{{3, full()}, {3, granted("s2")}}}, true},
		{"moved though every server is listed", map[int]held{1: {"s1", liveSince}},
			[][]answer{{{1, moved("s2", "s1")}}}, true},
		{"new with a previous server", nil,
			[][]answer{{{1, store.Result{Outcome: store.OutcomeNew, Server: "s2", Previous: "s1"}}}}, true},
		{"unknown server", nil,
			[][]answer{{{1, granted("s9")}}}, true},
		{"hit without a server", nil,
			[][]answer{{{1, store.Result{Outcome: store.OutcomeHit}}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newModel(list, idle)
			for u, h := range tt.seats {
				m.seats[u] = h
			}
			problems := m.check(now, tt.logs)
			if got := len(problems) > 0; got != tt.wantProblem {
				t.Errorf("check() = %q; want problems: %v", problems, tt.wantProblem)
			}
		})
	}
}

// TestModelFolds checks that the model carries each phase's answers over to the next.
func TestModelFolds(t *testing.T) {
	m := newModel(servers(up("s1", 1)), idle)
	phases := []struct {
		at          time.Duration // since start
		logs        [][]answer
		wantProblem bool
	}{
		{0, [][]answer{{{1, granted("s1")}}}, false},
		{idle / 2, [][]answer{{{1, hit("s1")}}}, false},
		// Refreshed at idle/2, user 1 is live until idle/2+idle, exclusive.
		{idle/2 + idle - 1, [][]answer{{{2, full()}}}, false},
		{idle/2 + idle, [][]answer{{{2, granted("s1")}}}, false},
		{idle/2 + idle + 1, [][]answer{{{1, granted("s1")}}}, true},
	}
	for i, ph := range phases {
		problems := m.check(start.Add(ph.at), ph.logs)
		if got := len(problems) > 0; got != ph.wantProblem {
			t.Errorf("phase %d at start+%v: check(%v) = %q; want problems: %v", i, ph.at, ph.logs, problems, ph.wantProblem)
		}
	}
}
