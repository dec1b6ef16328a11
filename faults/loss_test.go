package faults

import (
	"strings"
	"testing"
	"time"
)

// lossLog: a and b on s1, c and d on s2, every second for 20 s; the store loses its seats
// from 5 s to 6 s (every request then fails), after which a and c come back on the other
// server, and e, who had no seat, gets one.
func lossLog() []Reply {
	var log []Reply
	for ms := 0; ms < 20000; ms += 1000 {
		if ms == 5000 {
			log = append(log, failed("a", ms), failed("b", ms+1), failed("c", ms+2), failed("d", ms+3))
			continue
		}
		a, c := "s1", "s2"
		if ms > 5000 {
			a, c = "s2", "s1"
		}
		log = append(log, seat("a", ms, a), seat("b", ms+1, "s1"), seat("c", ms+2, c), seat("d", ms+3, "s2"))
	}
	return log
}

func lossFault(loses bool) []Fault {
	return []Fault{{Name: "redis loses its data", PhaseStart: at(0), PhaseEnd: at(20000), Start: at(5000), End: at(6000), LosesSeats: loses}}
}

func TestCheckSeatLossIsAnException(t *testing.T) {
	cfg := testCfg
	cfg.Idle = 3 * time.Second
	rep := Check(cfg, lossLog(), lossFault(true))
	if n := rep.Violations(); n != 0 {
		t.Errorf("Check(seat loss) = %d violations; want 0 (a documented exception):\n%v", n, rep.Rows[0].Violations)
	}
	if len(rep.Rows[0].Exceptions) == 0 {
		t.Errorf("Check(seat loss) has no exceptions; want the moves of a and c")
	}
	if len(rep.Losses) != 1 {
		t.Fatalf("Check(seat loss) = %d losses; want 1", len(rep.Losses))
	}
	l := rep.Losses[0]
	// a's session on s1 lasts until its last request there (4 s) plus the idle timeout (3 s):
	// s1 holds a, b and c (quota 2) from c's first answer there (6.01 s) to 7 s.
	want := Loss{Fault: "redis loses its data", Seated: 4, Moved: 2, Refused: 0,
		Held: map[string]int{"s1": 3, "s2": 3}, OverQuota: 2 * time.Second}
	if l.String() != want.String() {
		t.Errorf("Loss = %s\nwant   %s", l, want)
	}
	if table := rep.Table(); !strings.Contains(table, "documented exceptions") || !strings.Contains(table, "2 of 4 seated users moved") {
		t.Errorf("Table() does not report the loss apart:\n%s", table)
	}
}

// TestCheckSeatLossOutsideAnExceptionIsAViolation: the same log from a fault not marked as
// losing seats is a violation, as before.
func TestCheckSeatLossOutsideAnExceptionIsAViolation(t *testing.T) {
	rep := Check(testCfg, lossLog(), lossFault(false))
	if rep.Violations() == 0 || len(rep.Losses) != 0 {
		t.Errorf("Check(moves, no LosesSeats) = %d violations, %d losses; want violations and no loss", rep.Violations(), len(rep.Losses))
	}
}
