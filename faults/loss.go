package faults

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Loss is what a fault that loses the store's seats cost, measured from the answers. Redis
// restarted without persistence (or killed before its last writes reached the disk) comes
// back empty and the agents grant every seat again: users move to other servers, and a
// server keeps the sessions of the users who left it until they expire while it takes new
// users up to its quota. That is what the store's persistence allows, not a bug the suite
// can fail on, so it is reported apart, with these numbers, as a documented exception.
type Loss struct {
	Fault string
	// Seated is how many users held a seat just before the fault.
	Seated int
	// Moved counts those answered another server after the fault.
	Moved int
	// Refused counts those answered `full` after the fault (their seat lost, the servers full).
	Refused int
	// Held is, per server, the most users holding a session on it at once in the phase. A
	// user holds one from its first answer there until its last request there plus the idle
	// timeout, as long as the application keeps it, whether or not the store still has it.
	Held map[string]int
	// OverQuota is how long after the fault's start some server still held more users than
	// its quota (0 when none did).
	OverQuota time.Duration
}

// String renders the loss as one line of the report.
func (l Loss) String() string {
	var servers []string
	for s := range l.Held {
		servers = append(servers, s)
	}
	sort.Strings(servers)
	var held []string
	for _, s := range servers {
		held = append(held, fmt.Sprintf("%s %d", s, l.Held[s]))
	}
	return fmt.Sprintf("%s: %d of %d seated users moved, %d refused full; most users held at once: %s; over quota for %s after the fault",
		l.Fault, l.Moved, l.Seated, l.Refused, strings.Join(held, ", "), l.OverQuota.Round(100*time.Millisecond))
}

// measureLoss measures fault f (which LosesSeats) from the replies sent in its phase.
func measureLoss(cfg Config, replies []Reply, f Fault) Loss {
	l := Loss{Fault: f.Name, Held: map[string]int{}}
	type span struct{ from, to time.Time }
	byUser := map[string][]Reply{}
	for _, r := range replies {
		if !r.Sent.Before(f.PhaseStart) && r.Sent.Before(f.PhaseEnd) {
			byUser[r.User] = append(byUser[r.User], r)
		}
	}
	// held[server][user]: the user's sessions on the server, merged.
	held := map[string]map[string][]span{}
	for u, rs := range byUser {
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].Sent.Before(rs[j].Sent) })
		var before, after string
		refused := false
		for _, r := range rs {
			switch {
			case r.Kind == Seated && r.Answered.Before(f.Start):
				before = r.Server
			case r.Kind == Seated && r.Sent.After(f.End) && after == "":
				after = r.Server
			case r.Kind == Full && !r.Sent.Before(f.Start):
				refused = true
			}
			if r.Kind != Seated {
				continue
			}
			if held[r.Server] == nil {
				held[r.Server] = map[string][]span{}
			}
			s := span{r.Answered, r.Sent.Add(cfg.Idle)}
			spans := held[r.Server][u]
			if n := len(spans); n > 0 && !s.from.After(spans[n-1].to) {
				if s.to.After(spans[n-1].to) {
					spans[n-1].to = s.to
				}
			} else {
				spans = append(spans, s)
			}
			held[r.Server][u] = spans
		}
		if before == "" {
			continue
		}
		l.Seated++
		if after != "" && after != before {
			l.Moved++
		}
		if refused {
			l.Refused++
		}
	}
	var overUntil time.Time
	for server, users := range held {
		type event struct {
			at time.Time
			d  int
		}
		var evs []event
		for _, spans := range users {
			for _, s := range spans {
				to := s.to
				if to.After(f.PhaseEnd) {
					to = f.PhaseEnd
				}
				evs = append(evs, event{s.from, 1}, event{to, -1})
			}
		}
		// Ends before starts at the same instant: touching sessions do not overlap.
		sort.Slice(evs, func(i, j int) bool {
			if !evs[i].at.Equal(evs[j].at) {
				return evs[i].at.Before(evs[j].at)
			}
			return evs[i].d < evs[j].d
		})
		n, quota := 0, cfg.Quotas[server]
		for _, e := range evs {
			if e.d < 0 && n > quota && e.at.After(overUntil) {
				overUntil = e.at // the end of an instant over quota
			}
			n += e.d
			l.Held[server] = max(l.Held[server], n)
		}
	}
	if overUntil.After(f.Start) {
		l.OverQuota = overUntil.Sub(f.Start)
	}
	return l
}
