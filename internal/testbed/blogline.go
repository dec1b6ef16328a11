package testbed

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// LineReport is the blog's procedure played against a pool with a line.
type LineReport struct {
	Steps []Step
	// FirstSeat is each of the six first clients' server on first visit.
	FirstSeat map[string]string
	// Arrival is the place each of clients 7, 8 and 9 got on arrival (0: none).
	Arrival map[string]int
	// Places lists the places each of clients 7–9 was told while waiting, repeats dropped.
	Places map[string][]int
	// Order lists clients 7–9 in the order they got a seat; Seat is the seat each got,
	// Tries how many of its requests were refused first.
	Order []string
	Seat  map[string]string
	Tries map[string]int
	// Freed is, for each seat taken from the line, how long after the last request of the
	// client who held it (clients 1, 2, 3 in turn) it was taken.
	Freed []time.Duration
	// Idle is the stack's idle timeout.
	Idle time.Duration
	// KeepAlive are the replies the clients staying active got.
	KeepAlive []Reply
	// BackPlace is the place client 1 got when it came back (0: none).
	BackPlace int
}

// LineClients returns nine users from 127.0.0.11–19; in http mode they also send x-user.
func LineClients(mode string) []*Client {
	var cs []*Client
	for i := 1; i <= 9; i++ {
		user := ""
		if mode == "http" {
			user = fmt.Sprintf("user-%d", i)
		}
		cs = append(cs, NewClient(fmt.Sprintf("client-%d", i), fmt.Sprintf("127.0.0.%d", 10+i), user))
	}
	return cs
}

// lineKey is the key the agent sees for c: its x-user header, or its source address.
func lineKey(c *Client) string {
	if c.User != "" {
		return c.User
	}
	return c.Source
}

// PlayLine runs the blog's procedure on a stack whose pool has a line (StackOptions.Queue
// and Admin): six clients get two per server and stick; clients 7, 8 and 9 arrive in that
// order and wait at places 1, 2 and 3. Then clients 1, 2 and 3 go quiet one after another
// (idle/2 apart) while clients 4–6 stay active, and 9, 8, 7 keep retrying in that order,
// tail first: each freed seat must still go to the head of the line. Client 1 coming back
// joins the line. The place a waiting user is told comes from HAProxy's page in http mode
// and from the agent's admin API in tcp mode (there, HAProxy only closes the connection).
func PlayLine(ctx context.Context, s *Stack, clients []*Client, idle time.Duration) (LineReport, error) {
	rep := LineReport{FirstSeat: map[string]string{}, Arrival: map[string]int{}, Places: map[string][]int{},
		Seat: map[string]string{}, Tries: map[string]int{}, Idle: idle}
	place := func(c *Client, r Reply) (int, error) {
		if r.Seated() || s.Mode == "http" {
			return r.Place, nil
		}
		l, err := s.Line(ctx)
		return l.Place(lineKey(c)), err
	}

	first := Step{Title: "first visit"}
	for _, c := range clients[:6] {
		r, err := c.Get(ctx, s.Frontend)
		if err != nil {
			return rep, err
		}
		first.Replies = append(first.Replies, r)
		rep.FirstSeat[c.Name] = r.Server
	}
	rep.Steps = append(rep.Steps, first)
	again := Step{Title: "3 more visits each"}
	for range 3 {
		for _, c := range clients[:6] {
			r, err := c.Get(ctx, s.Frontend)
			if err != nil {
				return rep, err
			}
			again.Replies = append(again.Replies, r)
		}
	}
	rep.Steps = append(rep.Steps, again)
	// lastSeen[i] is when client i+1's last request was answered.
	now := time.Now()
	lastSeen := []time.Time{now, now, now}

	arrive := Step{Title: "clients 7, 8, 9 arrive"}
	for _, c := range clients[6:9] {
		r, err := c.Get(ctx, s.Frontend)
		if err != nil {
			return rep, err
		}
		p, err := place(c, r)
		if err != nil {
			return rep, err
		}
		arrive.Replies = append(arrive.Replies, r)
		rep.Arrival[c.Name] = p
		if p > 0 {
			rep.Places[c.Name] = []int{p}
		}
	}
	rep.Steps = append(rep.Steps, arrive)

	// Clients 2 and 3 stay active until idle/2 and idle from now; 4–6 throughout.
	start := time.Now()
	kctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var keepErr error
	for i, c := range clients[1:6] {
		quietAt := time.Time{}
		if i < 2 {
			quietAt = start.Add(time.Duration(i+1) * idle / 2)
		}
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
				if !quietAt.IsZero() && time.Now().After(quietAt) {
					return
				}
				r, err := c.Get(kctx, s.Frontend)
				mu.Lock()
				if err != nil && kctx.Err() == nil && keepErr == nil {
					keepErr = err
				}
				if err == nil {
					rep.KeepAlive = append(rep.KeepAlive, r)
					if i < 2 {
						lastSeen[i+1] = time.Now()
					}
				}
				mu.Unlock()
			}
		}()
	}
	finish := func() error {
		stop()
		wg.Wait()
		return keepErr
	}

	wait := Step{Title: fmt.Sprintf("1, 2, 3 quiet %s apart; 9, 8, 7 retry", idle/2)}
	deadline := time.Now().Add(3*idle + 5*time.Second)
	for len(rep.Order) < 3 && time.Now().Before(deadline) {
		for _, c := range []*Client{clients[8], clients[7], clients[6]} {
			r, err := c.Get(ctx, s.Frontend)
			if err != nil {
				return rep, firstErr(err, finish())
			}
			wait.Replies = append(wait.Replies, r)
			if _, seated := rep.Seat[c.Name]; seated {
				continue
			}
			if r.Seated() {
				mu.Lock()
				held := lastSeen[len(rep.Order)]
				mu.Unlock()
				rep.Freed = append(rep.Freed, time.Since(held))
				rep.Order = append(rep.Order, c.Name)
				rep.Seat[c.Name] = r.Server
				continue
			}
			rep.Tries[c.Name]++
			p, err := place(c, r)
			if err != nil {
				return rep, firstErr(err, finish())
			}
			if ps := rep.Places[c.Name]; len(ps) == 0 || ps[len(ps)-1] != p {
				rep.Places[c.Name] = append(ps, p)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	rep.Steps = append(rep.Steps, wait)
	if err := finish(); err != nil {
		return rep, err
	}

	back := Step{Title: "client 1 comes back"}
	r, err := clients[0].Get(ctx, s.Frontend)
	if err != nil {
		return rep, err
	}
	if rep.BackPlace, err = place(clients[0], r); err != nil {
		return rep, err
	}
	back.Replies = append(back.Replies, r)
	rep.Steps = append(rep.Steps, back)
	return rep, nil
}

// firstErr returns the first of its arguments that is not nil.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Verify checks a report against the blog's requirements for servers × quota, with a line.
func (rep LineReport) Verify(servers []string, quota int) []Check {
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

	seat := map[string]string{}
	for k, v := range rep.FirstSeat {
		seat[k] = v
	}
	for k, v := range rep.Seat {
		seat[k] = v
	}
	sticky := true
	var moved []string
	replies := slices.Concat(rep.Steps[1].Replies, rep.KeepAlive, rep.Steps[3].Replies)
	for _, r := range replies {
		if want, ok := seat[r.Client]; ok && r.Seated() && r.Server != want {
			sticky = false
			moved = append(moved, fmt.Sprintf("%s: %s then %s", r.Client, want, r))
		}
	}
	for _, r := range slices.Concat(rep.Steps[1].Replies, rep.KeepAlive) {
		if !r.Seated() {
			sticky = false
			moved = append(moved, fmt.Sprintf("%s refused while active", r.Client))
		}
	}
	add("every return visit lands on the same server", sticky, strings.Join(moved, "; "))

	var arrived []string
	refused := true
	for _, r := range rep.Steps[2].Replies {
		arrived = append(arrived, fmt.Sprintf("%s at %d", r.Client, rep.Arrival[r.Client]))
		refused = refused && !r.Seated()
	}
	add("clients 7, 8, 9 are refused and wait at places 1, 2, 3", refused &&
		rep.Arrival["client-7"] == 1 && rep.Arrival["client-8"] == 2 && rep.Arrival["client-9"] == 3, strings.Join(arrived, ", "))

	add("they are seated in arrival order (7, 8, 9) although 9 and 8 ask first",
		slices.Equal(rep.Order, []string{"client-7", "client-8", "client-9"}), strings.Join(rep.Order, ", "))
	var took []string
	same := len(rep.Order) == 3
	for i, c := range rep.Order {
		holder := fmt.Sprintf("client-%d", i+1)
		took = append(took, fmt.Sprintf("%s %s (%s's was %s)", c, rep.Seat[c], holder, rep.FirstSeat[holder]))
		same = same && rep.Seat[c] == rep.FirstSeat[holder]
	}
	add("each takes the seat of the client who went quiet (1, 2, 3 in turn)", same, strings.Join(took, "; "))

	moves := slices.Equal(rep.Places["client-7"], []int{1}) &&
		slices.Equal(rep.Places["client-8"], []int{2, 1}) && slices.Equal(rep.Places["client-9"], []int{3, 2, 1})
	add("places move up as seats free (9 is told 3, 2, 1)", moves,
		fmt.Sprintf("7: %v, 8: %v, 9: %v", rep.Places["client-7"], rep.Places["client-8"], rep.Places["client-9"]))

	early := len(rep.Freed) == 3
	var freed []string
	for _, d := range rep.Freed {
		early = early && d >= rep.Idle-100*time.Millisecond
		freed = append(freed, d.Round(10*time.Millisecond).String())
	}
	add("no seat frees before the idle timeout", early,
		fmt.Sprintf("taken %s after its holder's last request (idle %s)", strings.Join(freed, ", "), rep.Idle))

	r1 := rep.Steps[4].Replies[0]
	add("client 1 coming back is refused and waits at place 1", !r1.Seated() && rep.BackPlace == 1,
		fmt.Sprintf("%s, place %d", r1, rep.BackPlace))
	return checks
}
