package faults

import (
	"strings"
	"testing"
	"time"
)

// t0 is the start of every hand-made log; at(ms) is t0 plus ms milliseconds.
var t0 = time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// seat, full, refused and failed are one reply each, sent at ms and answered 10 ms later.
func seat(user string, ms int, server string) Reply {
	return Reply{User: user, Sent: at(ms), Answered: at(ms + 10), Kind: Seated, Server: server}
}

func full(user string, ms int) Reply {
	return Reply{User: user, Sent: at(ms), Answered: at(ms + 10), Kind: Full}
}

func refused(user string, ms int) Reply {
	return Reply{User: user, Sent: at(ms), Answered: at(ms + 10), Kind: Refused, Detail: "503 stickyseat: seat service unavailable"}
}

func failed(user string, ms int) Reply {
	return Reply{User: user, Sent: at(ms), Answered: at(ms + 10), Kind: Failed, Detail: "timeout"}
}

var testCfg = Config{Quotas: map[string]int{"s1": 2, "s2": 2}, Grace: time.Second, Recovery: time.Second}

// oneFault is a 20 s phase with a fault from 5 s to 8 s.
func oneFault(downs ...Down) []Fault {
	return []Fault{{Name: "f", PhaseStart: at(0), PhaseEnd: at(20000), Start: at(5000), End: at(8000), Downs: downs}}
}

// steadyLog seats a on s1, b on s1, c on s2 and refuses d (full) every second for 20 s.
func steadyLog() []Reply {
	var log []Reply
	for ms := 0; ms < 20000; ms += 1000 {
		log = append(log, seat("a", ms, "s1"), seat("b", ms+1, "s1"), seat("c", ms+2, "s2"), full("d", ms+3))
	}
	return log
}

// background is user z on s2 every second, so that every second of the phase has traffic.
func background() []Reply {
	var log []Reply
	for ms := 0; ms < 20000; ms += 1000 {
		log = append(log, seat("z", ms+7, "s2"))
	}
	return log
}

func TestCheckCleanLog(t *testing.T) {
	rep := Check(testCfg, steadyLog(), oneFault())
	if n := rep.Violations(); n != 0 {
		t.Fatalf("Check(steady log) = %d violations; want 0:\n%v", n, rep.Rows[0].Violations)
	}
	row := rep.Rows[0]
	if row.Decisions != 80 || row.Errors != 0 || row.Recovery != 0 || !row.Clean {
		t.Errorf("row = %+v; want 80 decisions, 0 errors, recovery 0, clean", row)
	}
	if rep.MaxUsers["s1"] != 2 || rep.MaxUsers["s2"] != 1 {
		t.Errorf("MaxUsers = %v; want s1 2, s2 1", rep.MaxUsers)
	}
}

// wantViolation checks rep has exactly n violations and that the first mentions want.
func wantViolation(t *testing.T, rep Report, n int, want string) {
	t.Helper()
	var all []Violation
	for _, r := range rep.Rows {
		all = append(all, r.Violations...)
	}
	all = append(all, rep.Unattributed...)
	if len(all) != n {
		t.Fatalf("%d violations; want %d: %v", len(all), n, all)
	}
	if n > 0 && !strings.Contains(all[0].String(), want) {
		t.Errorf("violation %q; want it to mention %q", all[0], want)
	}
}

func TestCheckQuota(t *testing.T) {
	// e joins s1 at 10 s while a and b still use it: three users on a quota of two.
	log := steadyLog()
	for ms := 10000; ms < 20000; ms += 1000 {
		log = append(log, seat("e", ms+5, "s1"))
	}
	rep := Check(testCfg, log, oneFault())
	wantViolation(t, rep, 1, "s1 holds 3 users, quota 2")
	if rep.MaxUsers["s1"] != 3 {
		t.Errorf("MaxUsers[s1] = %d; want 3", rep.MaxUsers["s1"])
	}

	// e takes s1 only after b left it (b's last request at 9 s): no overlap.
	log = nil
	for ms := 0; ms < 20000; ms += 1000 {
		log = append(log, seat("a", ms, "s1"))
		if ms < 10000 {
			log = append(log, seat("b", ms+1, "s1"))
		} else {
			log = append(log, seat("e", ms+5, "s1"))
		}
	}
	wantViolation(t, Check(testCfg, log, oneFault()), 0, "")
}

func TestCheckUnknownServer(t *testing.T) {
	log := append(steadyLog(), seat("e", 0, "s9"), seat("e", 1000, "s9"))
	wantViolation(t, Check(testCfg, log, oneFault()), 1, "not a configured server")
}

func TestCheckMoved(t *testing.T) {
	// a answered s2 at the end though it sits on s1 and no server was down.
	log := steadyLog()
	log = append(log, seat("a", 19500, "s2"))
	wantViolation(t, Check(testCfg, log, oneFault()), 1, "a seated on s1 answered s2: moved without a down policy")
}

func TestCheckDownPolicy(t *testing.T) {
	down := Down{Server: "s1", Stopped: at(5000), Started: at(8000)}
	// a is refused while s1 is down, then moved to s2 after the grace; b is released
	// (full) after the grace; both are errors inside the window only.
	var log []Reply
	for ms := 0; ms < 20000; ms += 1000 {
		switch {
		case ms < 5000:
			log = append(log, seat("a", ms, "s1"), seat("b", ms+1, "s1"))
		case ms == 5000:
			log = append(log, refused("a", ms), refused("b", ms+1))
		default:
			log = append(log, seat("a", ms, "s2"), full("b", ms+1))
		}
	}
	rep := Check(testCfg, log, oneFault(down))
	wantViolation(t, rep, 0, "")
	if row := rep.Rows[0]; row.Errors != 2 {
		t.Errorf("errors = %d; want 2 (the two refusals while s1 was down)", row.Errors)
	}

	// The same move before the grace has passed is not the down policy's.
	early := append(background(), seat("a", 0, "s1"), seat("a", 5500, "s2"))
	wantViolation(t, Check(testCfg, early, oneFault(down)), 1, "moved without a down policy")
	// Nor one long after the server came back.
	late := append(background(), seat("a", 0, "s1"), seat("a", 12000, "s2"))
	wantViolation(t, Check(testCfg, late, oneFault(down)), 1, "moved without a down policy")
	// Nor a move away from another server.
	other := append(background(), seat("a", 0, "s2"), seat("a", 6500, "s1"))
	wantViolation(t, Check(testCfg, other, oneFault(down)), 1, "moved without a down policy")
}

func TestCheckSeatLost(t *testing.T) {
	log := steadyLog()
	log = append(log, full("c", 15500))
	wantViolation(t, Check(testCfg, log, oneFault()), 2, "c seated on s2 answered full: its seat was lost")
}

func TestCheckErrorWindow(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply Reply
		bad   int
	}{
		{"refused in the fault", refused("a", 6000), 0},
		{"timeout in the fault", failed("a", 6000), 0},
		{"refused 0.9 s after the fault", refused("a", 8900), 0},
		{"refused 1.5 s after the fault", refused("a", 9500), 1},
		{"timeout before the fault", failed("a", 3000), 1},
		{"never-seated user refused, not full", refused("d", 12000), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := append(steadyLog(), tc.reply)
			rep := Check(testCfg, log, oneFault())
			wantViolation(t, rep, tc.bad, "got an error outside every fault window")
			if rep.Rows[0].Errors != 1 {
				t.Errorf("errors = %d; want 1", rep.Rows[0].Errors)
			}
		})
	}
}

func TestCheckRecovery(t *testing.T) {
	log := append(steadyLog(), refused("a", 5500), failed("b", 8300))
	rep := Check(testCfg, log, oneFault())
	wantViolation(t, rep, 0, "")
	// The last error was answered at 8.31 s, the fault ended at 8 s.
	if row := rep.Rows[0]; row.Recovery != 310*time.Millisecond || row.Errors != 2 {
		t.Errorf("row = %+v; want recovery 310ms, 2 errors", row)
	}
	// A phase without traffic after the fault cannot show a recovery.
	var short []Reply
	for _, r := range steadyLog() {
		if r.Sent.Before(at(7000)) {
			short = append(short, r)
		}
	}
	wantViolation(t, Check(testCfg, short, oneFault()), 1, "no answer in the second after")
}

func TestCheckQuotaCountsBothSeatsOfAMovedUser(t *testing.T) {
	// Two agents that do not share seats: a, b and c alternate between s1 and s2, so each
	// holds a seat on both, and both servers carry three users on a quota of two.
	var log []Reply
	for ms := 0; ms < 20000; ms += 1000 {
		for i, u := range []string{"a", "b", "c"} {
			server := []string{"s1", "s2"}[(ms/1000+i)%2]
			log = append(log, seat(u, ms+i, server))
		}
	}
	rep := Check(testCfg, log, oneFault())
	var quota int
	for _, v := range rep.Rows[0].Violations {
		if strings.Contains(v.What, "quota 2") {
			quota++
		}
	}
	if quota != 2 || rep.MaxUsers["s1"] != 3 || rep.MaxUsers["s2"] != 3 {
		t.Errorf("quota violations %d, MaxUsers %v; want one per server, 3 users on each", quota, rep.MaxUsers)
	}
}
