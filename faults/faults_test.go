package faults

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// The deployment under test: 3 servers × quota 500 for 1800 users, so every server fills and
// 300 users are refused `full` throughout.
const (
	users   = 1800
	quota   = 500
	grace   = time.Second // --down-grace
	workers = 64
	rate    = 800 // requests per second over both nodes: each user every 2.25 s
)

var servers = []string{"s1", "s2", "s3"}

// timeouts are the agents' store and decision deadlines: twice the defaults (250ms, 500ms),
// still below the SPOE timeout processing (1s) and far below the 2 s Redis stalls. The
// suite shares two cores with HAProxy, Redis, both agents, the backends and the load (and,
// on the development machine, with other sessions' benchmarks): with the defaults a Redis
// round trip occasionally missed 250 ms in steady state, which turned a newcomer's `full`
// into `error` outside any fault.
var timeouts = []string{"--redis-timeout", "500ms", "--decision-timeout", "800ms"}

// TestFaults runs steady load from 1800 users over two HAProxy nodes, two agents and one
// Redis, injects each fault in turn and then all at once, and checks every answer. It runs
// only under `make test-faults` (STICKYSEAT_FAULTS=1): it takes minutes.
func TestFaults(t *testing.T) {
	if os.Getenv("STICKYSEAT_FAULTS") != "1" {
		t.Skip("the fault suite runs under `make test-faults` (STICKYSEAT_FAULTS=1)")
	}
	runFaults(t, rigOptions{Quota: quota, Idle: time.Hour, RedisArgs: persistent})
}

// TestFaultsFastPath runs the same suite with the fast path on every node: HAProxy routes
// the users it served within the window by itself, the agents sync its table every second.
// The checker's promises are the same (a user HAProxy keeps routing during a fault is no
// error); moves off a stopped server come up to one sync interval later, still after the grace.
func TestFaultsFastPath(t *testing.T) {
	if os.Getenv("STICKYSEAT_FAULTS") != "1" {
		t.Skip("the fault suite runs under `make test-faults` (STICKYSEAT_FAULTS=1)")
	}
	runFaults(t, rigOptions{Quota: quota, Idle: time.Hour, RedisArgs: persistent, FastPath: true})
}

func runFaults(t *testing.T, o rigOptions) {
	r := startRig(t, o)

	load := &Load{Users: users, Workers: workers, Rate: rate, Timeout: 3 * time.Second}
	for _, n := range r.nodes {
		load.Frontends = append(load.Frontends, n.stack.Frontend)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() { load.Run(loadCtx); close(loadDone) }()
	defer func() { stopLoad(); <-loadDone }()

	var faults []Fault
	var crashes []Violation
	phase := func(name string, pre, post time.Duration, inject func() (start, end time.Time, downs []Down)) {
		f := Fault{Name: name, PhaseStart: time.Now()}
		time.Sleep(pre)
		if inject != nil {
			f.Start, f.End, f.Downs = inject()
			time.Sleep(post)
		}
		f.PhaseEnd = time.Now()
		crashes = append(crashes, r.crashes(f.PhaseEnd)...)
		t.Logf("%s: phase %s–%s, fault %s–%s, downs %v; %d replies so far", name, clock(f.PhaseStart), clock(f.PhaseEnd),
			clock(f.Start), clock(f.End), f.Downs, load.Count())
		faults = append(faults, f)
	}

	const pre, post = 4 * time.Second, 6 * time.Second
	phase("steady", 10*time.Second, 0, nil)
	phase("agent kill -9", pre, post, func() (time.Time, time.Time, []Down) {
		start := time.Now()
		r.killAgent(0)
		time.Sleep(2 * time.Second)
		r.restartAgent(0)
		return start, time.Now(), nil
	})
	phase("redis stop 5s", pre, post, func() (time.Time, time.Time, []Down) {
		start := time.Now()
		r.stopRedis()
		time.Sleep(5 * time.Second)
		r.startRedis()
		return start, time.Now(), nil
	})
	phase("redis CLIENT PAUSE 2s", pre, post, func() (time.Time, time.Time, []Down) {
		start := time.Now()
		r.redisCommand(5*time.Second, "CLIENT", "PAUSE", "2000", "ALL")
		time.Sleep(time.Until(start.Add(2 * time.Second)))
		return start, time.Now(), nil
	})
	phase("redis DEBUG SLEEP 2s", pre, post, func() (time.Time, time.Time, []Down) {
		start := time.Now()
		r.redisCommand(10*time.Second, "DEBUG", "SLEEP", "2")
		return start, time.Now(), nil
	})
	phase("haproxy reload ×2", pre, post, func() (time.Time, time.Time, []Down) {
		start := time.Now()
		r.reloadAll()
		return start, time.Now(), nil
	})
	phase("backend s1 stop 4s", pre, post, func() (time.Time, time.Time, []Down) {
		start := time.Now()
		d := r.stopBackend(0, 4*time.Second)
		return start, time.Now(), []Down{d}
	})
	phase("combined", pre, post+time.Second, func() (time.Time, time.Time, []Down) {
		// Everything at once: agent 1 killed, Redis stopped, s2 stopped; then everything back
		// after 5 s. HAProxy reloads are left out of the combination: HAProxy 2.6.12 (Debian)
		// segfaults in its old process's soft stop when reloaded while its agent is dead and a
		// server is DOWN (2 of 12 reloads in a targeted run, always at the same instruction,
		// dmesg "segfault at 0/8/18 ... in haproxy[204260]"), which is HAProxy's crash, not
		// ours; reloads have their own row above.
		start := time.Now()
		var wg sync.WaitGroup
		var d Down
		wg.Add(3)
		go func() { defer wg.Done(); r.killAgent(1); time.Sleep(5 * time.Second); r.restartAgent(1) }()
		go func() { defer wg.Done(); r.stopRedis(); time.Sleep(5 * time.Second); r.startRedis() }()
		go func() { defer wg.Done(); d = r.stopBackend(1, 5*time.Second) }()
		wg.Wait()
		return start, time.Now(), []Down{d}
	})
	stopLoad()
	<-loadDone

	quotas := map[string]int{}
	for _, s := range servers {
		quotas[s] = quota
	}
	// The stated recovery bound: 1s after a fault ends. With the fast path, add one sync
	// interval (1s here): the agents clear or refresh HAProxy's table only at their next pass
	// once Redis answers again, and every agent competes with the sync workers for the 2 cores.
	recovery := time.Second
	if o.FastPath {
		recovery += time.Second
	}
	rep := Check(Config{Quotas: quotas, Grace: grace, Recovery: recovery}, load.Replies(), faults)
	for _, c := range crashes {
		if i := rowAt(faults, c.At); i >= 0 {
			rep.Rows[i].Violations = append(rep.Rows[i].Violations, c)
		} else {
			rep.Unattributed = append(rep.Unattributed, c)
		}
	}
	table := rep.Table()
	t.Logf("fault suite: %d users, 3 servers × quota %d, %d requests/s over 2 nodes, down grace %s\n%s",
		users, quota, rate, grace, table)
	if testing.Verbose() {
		fmt.Print(table)
	}
	for _, row := range rep.Rows {
		for i, v := range row.Violations {
			if i == 10 {
				t.Errorf("%s: %d more violations", row.Fault, len(row.Violations)-10)
				break
			}
			t.Errorf("%s: %s", row.Fault, v)
		}
		if row.Recovery > recovery {
			t.Errorf("%s: recovered %s after the fault ended; want within %s", row.Fault, row.Recovery, recovery)
		}
	}
	for _, v := range rep.Unattributed {
		t.Errorf("outside every phase: %s", v)
	}
	summarize(t, load.Replies(), faults)
}

func clock(t time.Time) string { return t.Format("15:04:05.000") }

func rowAt(faults []Fault, at time.Time) int {
	for i, f := range faults {
		if !at.Before(f.PhaseStart) && !at.After(f.PhaseEnd) {
			return i
		}
	}
	return -1
}

// summarize logs, per phase, how the answers split, so a failing row can be read.
func summarize(t *testing.T, replies []Reply, faults []Fault) {
	for _, f := range faults {
		kinds := map[string]int{}
		var failures []string
		var late []Reply
		for _, r := range replies {
			if r.Sent.Before(f.PhaseStart) || !r.Sent.Before(f.PhaseEnd) {
				continue
			}
			if r.Kind == Failed && len(failures) < 3 {
				failures = append(failures, r.String())
			}
			// What the recovery column counts: failures answered after the fault ended.
			if (r.Kind == Failed || r.Kind == Refused) && f.hasWindow() && r.Answered.After(f.End) {
				late = append(late, r)
			}
			k := r.Kind.String()
			if r.Kind == Refused || r.Kind == Failed {
				k += " " + r.Detail
			}
			kinds[k]++
		}
		t.Logf("%s: %v", f.Name, kinds)
		if len(failures) > 0 {
			t.Logf("%s: first failures:\n    %s", f.Name, strings.Join(failures, "\n    "))
		}
		if len(late) > 0 {
			// The last ones set the recovery column.
			sort.Slice(late, func(i, j int) bool { return late[i].Answered.Before(late[j].Answered) })
			var lines []string
			for _, r := range late[max(0, len(late)-5):] {
				lines = append(lines, r.String())
			}
			t.Logf("%s: %d refusals and failures answered after the fault's end (%s), the last:\n    %s",
				f.Name, len(late), clock(f.End), strings.Join(lines, "\n    "))
		}
	}
}
