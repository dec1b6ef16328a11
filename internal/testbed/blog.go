package testbed

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Step is one stage of the blog's test procedure and what every request in it got.
type Step struct {
	Title   string
	Replies []Reply
}

// BlogReport is the blog's test procedure as played against a stack.
type BlogReport struct {
	Steps []Step
	// FirstSeat is each of the six first clients' server on first visit.
	FirstSeat map[string]string
	// Expired is how long after client 1's last request client 7 got a seat (0 if never).
	Expired time.Duration
	// Idle is the stack's idle timeout.
	Idle time.Duration
	// KeepAlive are the replies the other five clients got while client 1's seat expired.
	KeepAlive []Reply
}

// BlogClients returns seven users from 127.0.0.11–17; in http mode they also send x-user.
func BlogClients(mode string) []*Client {
	var cs []*Client
	for i := 1; i <= 7; i++ {
		user := ""
		if mode == "http" {
			user = fmt.Sprintf("user-%d", i)
		}
		cs = append(cs, NewClient(fmt.Sprintf("client-%d", i), fmt.Sprintf("127.0.0.%d", 10+i), user))
	}
	return cs
}

// PlayBlog runs the blog's procedure: six clients get two per server and stick, a seventh
// is refused, then (while clients 2–6 keep their seats alive) client 1 goes quiet, its seat
// expires after the idle timeout and the seventh gets it; client 1 coming back is refused.
func PlayBlog(ctx context.Context, s *Stack, clients []*Client, idle time.Duration) (BlogReport, error) {
	rep := BlogReport{FirstSeat: map[string]string{}, Idle: idle}
	get := func(c *Client) (Reply, error) { return c.Get(ctx, s.Frontend) }

	first := Step{Title: "first visit"}
	for _, c := range clients[:6] {
		r, err := get(c)
		if err != nil {
			return rep, err
		}
		first.Replies = append(first.Replies, r)
		rep.FirstSeat[c.Name] = r.Server
	}
	rep.Steps = append(rep.Steps, first)

	again := Step{Title: "3 more visits each"}
	for round := 0; round < 3; round++ {
		for _, c := range clients[:6] {
			r, err := get(c)
			if err != nil {
				return rep, err
			}
			again.Replies = append(again.Replies, r)
		}
	}
	quietSince := time.Now() // client 1's last request has been answered
	rep.Steps = append(rep.Steps, again)

	seventh := Step{Title: "a 7th user arrives"}
	r, err := get(clients[6])
	if err != nil {
		return rep, err
	}
	seventh.Replies = append(seventh.Replies, r)
	rep.Steps = append(rep.Steps, seventh)

	// Clients 2-6 stay active (a request every idle/4) while client 1 is quiet.
	kctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var keepErr error
	for _, c := range clients[1:6] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(idle / 4)
			defer tick.Stop()
			for {
				select {
				case <-kctx.Done():
					return
				case <-tick.C:
				}
				r, err := c.Get(kctx, s.Frontend)
				mu.Lock()
				if err != nil && kctx.Err() == nil && keepErr == nil {
					keepErr = err
				}
				if err == nil {
					rep.KeepAlive = append(rep.KeepAlive, r)
				}
				mu.Unlock()
			}
		}()
	}
	expiry := Step{Title: fmt.Sprintf("client 1 quiet for %s, others active", idle)}
	deadline := time.Now().Add(idle + 5*time.Second)
	for {
		r, err := get(clients[6])
		if err != nil {
			stop()
			wg.Wait()
			return rep, err
		}
		expiry.Replies = append(expiry.Replies, r)
		if r.Seated() {
			rep.Expired = time.Since(quietSince)
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	rep.Steps = append(rep.Steps, expiry)

	back := Step{Title: "client 1 comes back"}
	if r, err = get(clients[0]); err != nil {
		stop()
		wg.Wait()
		return rep, err
	}
	back.Replies = append(back.Replies, r)
	rep.Steps = append(rep.Steps, back)
	stop()
	wg.Wait()
	return rep, keepErr
}

// Check is one expectation of the blog's procedure.
type Check struct {
	What string
	OK   bool
	Got  string
}

// Verify checks a report against the blog's requirements for servers × quota.
func (rep BlogReport) Verify(servers []string, quota int) []Check {
	var checks []Check
	add := func(what string, ok bool, got string) { checks = append(checks, Check{what, ok, got}) }

	per := map[string]int{}
	seated := 0
	for _, r := range rep.Steps[0].Replies {
		if r.Seated() {
			seated++
			per[r.Server]++
		}
	}
	add("six clients get a seat on first visit", seated == 6, fmt.Sprintf("%d seated", seated))
	balanced := len(per) == len(servers)
	for _, s := range servers {
		balanced = balanced && per[s] == quota
	}
	add(fmt.Sprintf("exactly %d users per server", quota), balanced, fmt.Sprint(sortedCounts(per)))

	sticky := true
	var moved []string
	for _, r := range append(append([]Reply(nil), rep.Steps[1].Replies...), rep.KeepAlive...) {
		if r.Server != rep.FirstSeat[r.Client] {
			sticky = false
			moved = append(moved, fmt.Sprintf("%s: %s then %s", r.Client, rep.FirstSeat[r.Client], r))
		}
	}
	add("every return visit lands on the same server", sticky, strings.Join(moved, "; "))

	r7 := rep.Steps[2].Replies[0]
	add("client 7 is refused while all seats are taken", !r7.Seated(), r7.String())

	last := rep.Steps[3].Replies[len(rep.Steps[3].Replies)-1]
	add("client 7 gets client 1's seat once it expires",
		last.Seated() && last.Server == rep.FirstSeat["client-1"],
		fmt.Sprintf("%s after %s (client 1 was on %s)", last, rep.Expired.Round(10*time.Millisecond), rep.FirstSeat["client-1"]))
	// The seat must not free early: client 1's last refresh came before quietSince, so an
	// honest expiry is never seen sooner than idle minus one round trip.
	add("the seat frees no earlier than the idle timeout", rep.Expired >= rep.Idle-100*time.Millisecond,
		fmt.Sprintf("freed %s after client 1's last request (idle %s)", rep.Expired.Round(10*time.Millisecond), rep.Idle))

	r1 := rep.Steps[4].Replies[0]
	add("client 1 coming back is refused (its seat was given away)", !r1.Seated(), r1.String())
	return checks
}

func sortedCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}
