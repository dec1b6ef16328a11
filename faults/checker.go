// Package faults runs stickyseat under steady load while faults are injected, and proves
// from every answer the clients got that the promises hold: quotas, stickiness, errors only
// while a fault lasts, recovery within a second.
package faults

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Kind is what one request got.
type Kind int

const (
	// Seated: a backend answered (Reply.Server).
	Seated Kind = iota
	// Full: refused because every server is full (the agent's `full`).
	Full
	// Refused: any other refusal (the agent failed, HAProxy found no server, ...).
	Refused
	// Failed: no answer at all (timeout, connection reset or refused).
	Failed
)

func (k Kind) String() string {
	switch k {
	case Seated:
		return "seated"
	case Full:
		return "full"
	case Refused:
		return "refused"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Reply is one request of the load and what it got.
type Reply struct {
	User     string
	Node     int
	Sent     time.Time
	Answered time.Time
	Kind     Kind
	Server   string // when Seated
	Detail   string // for Refused and Failed: the status line or the error
}

// String renders a reply as a log line, for violation evidence.
func (r Reply) String() string {
	what := r.Kind.String()
	switch r.Kind {
	case Seated:
		what = r.Server
	case Refused, Failed:
		what += " (" + r.Detail + ")"
	}
	return fmt.Sprintf("%s→%s %s node%d %s", r.Sent.Format("15:04:05.000"), r.Answered.Format("15:04:05.000"), r.User, r.Node, what)
}

// Down is a backend server stopped during a fault: its seated users may be released (answered
// `full`) or moved once it has been down for the grace.
type Down struct {
	Server  string
	Stopped time.Time
	Started time.Time
}

func (d Down) String() string {
	return fmt.Sprintf("%s down %s–%s", d.Server, d.Stopped.Format("15:04:05.000"), d.Started.Format("15:04:05.000"))
}

// Fault is one row of the table: a phase of steady load around a fault window.
type Fault struct {
	Name string
	// PhaseStart and PhaseEnd bound the requests counted in this row (by time sent).
	PhaseStart, PhaseEnd time.Time
	// Start and End bound the fault itself; both zero for a phase without a fault.
	Start, End time.Time
	Downs      []Down
	// LosesSeats marks a fault that loses the store's seats (Redis restarted without
	// persistence): what breaks in its phase is a documented exception, measured (Loss) and
	// kept apart from the violations.
	LosesSeats bool
}

func (f Fault) hasWindow() bool { return !f.Start.IsZero() }

// Config is what the checker needs to know about the deployment.
type Config struct {
	Quotas map[string]int
	// Grace is the agents' --down-grace.
	Grace time.Duration
	// Recovery is how long after a fault ends errors may still occur (1s).
	Recovery time.Duration
	// Idle is the agents' --idle-timeout: how long a lost seat's session lasts (Loss).
	Idle time.Duration
}

// Violation is one broken invariant with the log lines that prove it.
type Violation struct {
	At       time.Time
	What     string
	Evidence []Reply
}

func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", v.At.Format("15:04:05.000"), v.What)
	for _, r := range v.Evidence {
		fmt.Fprintf(&b, "\n    %s", r)
	}
	return b.String()
}

// Row is one line of the table.
type Row struct {
	Fault      string
	Decisions  int
	Errors     int
	Violations []Violation
	// Exceptions are what would be violations in the phase of a fault that LosesSeats.
	Exceptions []Violation
	// Recovery is from the fault's end to the answer of its last error (0 when the last
	// error came before the end); negative for a phase without a fault.
	Recovery time.Duration
	// Clean reports whether the phase had a whole second without any error after the
	// fault ended and at least one answer in it.
	Clean bool
}

// Report is the checker's verdict.
type Report struct {
	Rows []Row
	// Unattributed holds violations outside every phase.
	Unattributed []Violation
	// MaxUsers is, per server, the most users found seated on it at one instant.
	MaxUsers map[string]int
	// Losses measure each fault that LosesSeats.
	Losses []Loss
}

// Violations counts every violation.
func (r Report) Violations() int {
	n := len(r.Unattributed)
	for _, row := range r.Rows {
		n += len(row.Violations)
	}
	return n
}

// Table renders the rows.
func (r Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-22s %10s %8s %11s %9s\n", "fault", "decisions", "errors", "violations", "recovery")
	for _, row := range r.Rows {
		rec := "-"
		if row.Recovery >= 0 {
			rec = row.Recovery.Round(time.Millisecond).String()
		}
		fmt.Fprintf(&b, "%-22s %10d %8d %11d %9s\n", row.Fault, row.Decisions, row.Errors, len(row.Violations), rec)
	}
	if len(r.Unattributed) > 0 {
		fmt.Fprintf(&b, "%-22s %10s %8s %11d %9s\n", "(outside phases)", "", "", len(r.Unattributed), "")
	}
	var servers []string
	for s := range r.MaxUsers {
		servers = append(servers, s)
	}
	sort.Strings(servers)
	var most []string
	for _, s := range servers {
		most = append(most, fmt.Sprintf("%s %d", s, r.MaxUsers[s]))
	}
	fmt.Fprintf(&b, "most users seated at once: %s\n", strings.Join(most, ", "))
	for i, l := range r.Losses {
		if i == 0 {
			b.WriteString("documented exceptions (seats lost with the store's data, not counted as violations):\n")
		}
		exceptions := 0
		for _, row := range r.Rows {
			if row.Fault == l.Fault {
				exceptions = len(row.Exceptions)
			}
		}
		fmt.Fprintf(&b, "  %s; %d would-be violations\n", l, exceptions)
	}
	return b.String()
}

// run is one user's stay on one server: from the answer of its first request there to the
// sending of its last, the seat certainly existed.
type run struct {
	user        string
	server      string
	first, last Reply
}

// Check reads every reply and proves the invariants phase by phase:
//   - no server holds more users than its quota at any instant;
//   - a seated user is answered only its server, unless a down-policy move explains the
//     change (its server stopped, the answer came after the grace and before the server was
//     back for a second);
//   - a seated user is never answered `full` (its seat lost) unless the down policy
//     released it;
//   - errors (refusals other than `full` to never-seated users, timeouts, and any refusal of
//     a seated user) only overlap [fault start, fault end + Recovery].
func Check(cfg Config, replies []Reply, faults []Fault) Report {
	if cfg.Recovery == 0 {
		cfg.Recovery = time.Second
	}
	rep := Report{Rows: make([]Row, len(faults)), MaxUsers: map[string]int{}}
	for i, f := range faults {
		rep.Rows[i] = Row{Fault: f.Name, Recovery: -1}
	}
	phaseOf := func(t time.Time) int {
		for i, f := range faults {
			if !t.Before(f.PhaseStart) && t.Before(f.PhaseEnd) {
				return i
			}
		}
		return -1
	}
	violate := func(v Violation) {
		if i := phaseOf(v.At); i >= 0 && faults[i].LosesSeats {
			rep.Rows[i].Exceptions = append(rep.Rows[i].Exceptions, v)
			return
		} else if i >= 0 {
			rep.Rows[i].Violations = append(rep.Rows[i].Violations, v)
			return
		}
		rep.Unattributed = append(rep.Unattributed, v)
	}
	downMove := func(server string, r Reply) bool {
		for _, f := range faults {
			for _, d := range f.Downs {
				if d.Server == server && !r.Answered.Before(d.Stopped.Add(cfg.Grace)) && r.Sent.Before(d.Started.Add(cfg.Recovery)) {
					return true
				}
			}
		}
		return false
	}
	inWindow := func(r Reply) bool {
		for _, f := range faults {
			if f.hasWindow() && !r.Answered.Before(f.Start) && !r.Sent.After(f.End.Add(cfg.Recovery)) {
				return true
			}
		}
		return false
	}
	var errs []Reply

	byUser := map[string][]Reply{}
	for _, r := range replies {
		byUser[r.User] = append(byUser[r.User], r)
		if i := phaseOf(r.Sent); i >= 0 {
			rep.Rows[i].Decisions++
		}
	}
	users := make([]string, 0, len(byUser))
	for u := range byUser {
		users = append(users, u)
	}
	sort.Strings(users)
	var runs []run
	for _, u := range users {
		rs := byUser[u]
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].Sent.Before(rs[j].Sent) })
		// open holds the user's seats as the answers show them: normally one, its current
		// server (cur); after a move without a down policy also the server it left, which
		// still counts against that server's quota until the user is released.
		open := map[string]*run{}
		var cur *run
		closeRun := func(server string) {
			if o := open[server]; o != nil {
				runs = append(runs, *o)
				delete(open, server)
			}
		}
		closeAll := func() {
			for s := range open {
				closeRun(s)
			}
			cur = nil
		}
		// before returns the user's last answer on its server and its replies up to r: the
		// evidence of a violation.
		before := func(k int, last Reply) []Reply {
			recent := rs[max(0, k-4) : k+1]
			if !last.Sent.Before(recent[0].Sent) {
				return append([]Reply(nil), recent...)
			}
			return append([]Reply{last}, recent...)
		}
		seatOn := func(r Reply) {
			if o := open[r.Server]; o != nil {
				o.last = r
				cur = o
				return
			}
			cur = &run{user: u, server: r.Server, first: r, last: r}
			open[r.Server] = cur
		}
		for k, r := range rs {
			switch {
			case r.Kind == Seated && (cur == nil || cur.server == r.Server):
				seatOn(r)
			case r.Kind == Seated:
				if downMove(cur.server, r) {
					closeRun(cur.server)
				} else {
					violate(Violation{At: r.Answered, Evidence: before(k, cur.last),
						What: fmt.Sprintf("%s seated on %s answered %s: moved without a down policy", u, cur.server, r.Server)})
				}
				seatOn(r)
			case r.Kind == Full && cur == nil:
				// A user without a seat told every server is full: the quotas at work.
			case r.Kind == Full:
				if !downMove(cur.server, r) {
					errs = append(errs, r)
					violate(Violation{At: r.Answered, Evidence: before(k, cur.last),
						What: fmt.Sprintf("%s seated on %s answered full: its seat was lost", u, cur.server)})
				}
				// The store no longer has the seat: whatever comes next is a new one.
				closeAll()
			default:
				errs = append(errs, r)
			}
		}
		closeAll()
	}
	for _, r := range errs {
		if i := phaseOf(r.Sent); i >= 0 {
			rep.Rows[i].Errors++
		}
		if !inWindow(r) {
			violate(Violation{At: r.Answered, Evidence: []Reply{r},
				What: fmt.Sprintf("%s got an error outside every fault window (+%s)", r.User, cfg.Recovery)})
		}
	}
	checkQuotas(cfg, runs, violate, rep.MaxUsers)

	for i, f := range faults {
		if f.LosesSeats {
			rep.Losses = append(rep.Losses, measureLoss(cfg, replies, f))
		}
		if !f.hasWindow() {
			continue
		}
		row := &rep.Rows[i]
		row.Recovery = 0
		var last time.Time
		for _, r := range errs {
			if !r.Answered.Before(f.Start) && !r.Sent.After(f.End.Add(cfg.Recovery)) && r.Answered.After(last) {
				last = r.Answered
			}
		}
		if last.After(f.End) {
			row.Recovery = last.Sub(f.End)
		}
		// A whole clean second after the last error (or the end), with traffic in it.
		from := f.End
		if last.After(from) {
			from = last
		}
		for _, r := range replies {
			if r.Sent.After(from) && r.Sent.Before(from.Add(time.Second)) {
				row.Clean = true
				break
			}
		}
		if !row.Clean {
			violate(Violation{At: f.End, What: fmt.Sprintf("%s: no answer in the second after the fault's last error", f.Name)})
		}
	}
	return rep
}
