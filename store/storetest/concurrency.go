package storetest

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/store"
)

// Sizes of the concurrency subtest; -short shrinks them.
const (
	concGoroutines      = 64
	concRequests        = 10_000 // per goroutine, over all phases
	concPhases          = 40
	concShortGoroutines = 8
	concShortRequests   = 1_000
	concShortPhases     = 5

	// concUsers users compete for 3 × concQuota seats; each phase draws its requests from
	// concActive of them, so the users left out keep their seats until they expire and the
	// servers fill up in most phases.
	concUsers  = 200
	concActive = 120
	concQuota  = 50
)

// concAdvances are the clock steps between phases, cycled. Pairs summing to idle put seats
// exactly on their expiry boundary two phases later; idle itself expires every seat.
var concAdvances = []time.Duration{5 * time.Second, 5 * time.Second, 3 * time.Second, 7 * time.Second,
	idle, 2 * time.Second, 8 * time.Second, 4 * time.Second}

// concurrency hammers one pool from many goroutines in phases. Within a phase the clock is
// fixed and every answer is recorded; between phases, with every goroutine stopped, the clock
// advances so that some seats expire. model.check then verifies each phase: a user never gets
// two servers, no server exceeds its quota (counting users still live from earlier phases),
// live users keep their server across phases, and full is only answered when every server is
// at quota.
//
// How we know it can fail: checker_test.go feeds the checker hand-made answer logs of each
// kind of wrong store. And each of these temporary breakages of the memory store made this
// subtest fail, on every run tried: granting while used <= quota (over-grant); expiring at
// now > t+idle instead of >= (hit on an expired seat); never releasing a server's last seat
// (counter drift: full while a server had room); no pool mutex, run without -race (a user
// with no seat answered hits only); deciding and granting in two critical sections (quota
// exceeded, new and full for one user); answering moved to a live user.
func (s *suite) concurrency(t *testing.T) {
	goroutines, requests, phases := s.goroutines, s.requests, s.phases
	perPhase := requests / phases
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d goroutines × %d requests in %d phases", seed, goroutines, requests, phases)
	rng := rand.New(rand.NewPCG(seed, 0))

	e := s.env(t)
	list := servers(up("s1", concQuota), up("s2", concQuota), up("s3", concQuota))
	keys := make([]string, concUsers)
	for u := range keys {
		keys[u] = "user-" + strconv.Itoa(u)
	}
	m := newModel(list, idle)
	outcomes := make(map[store.Outcome]int)

	for phase := range phases {
		if phase > 0 {
			e.clock.Advance(concAdvances[(phase-1)%len(concAdvances)])
		}
		active := rng.Perm(concUsers)[:concActive]
		logs := make([][]answer, goroutines)
		begin := make(chan struct{})
		var wg sync.WaitGroup
		for g := range goroutines {
			r := rand.New(rand.NewPCG(seed, uint64(phase*goroutines+g+1)))
			wg.Go(func() {
				log := make([]answer, 0, perPhase)
				<-begin
				for range perPhase {
					u := active[r.IntN(len(active))]
					req := store.Request{Pool: e.pool(""), Key: keys[u], Servers: list, Idle: idle}
					res, err := e.store.Assign(context.Background(), req)
					if err != nil {
						t.Errorf("phase %d: Assign(%q) error: %v", phase, keys[u], err)
						return
					}
					log = append(log, answer{user: u, result: res})
				}
				logs[g] = log
			})
		}
		close(begin)
		wg.Wait()
		if t.Failed() {
			return
		}
		for _, log := range logs {
			for _, a := range log {
				outcomes[a.result.Outcome]++
			}
		}
		problems := m.check(e.clock.Now(), logs)
		for i, p := range problems {
			if i == 20 {
				t.Errorf("phase %d: %d more problems", phase, len(problems)-i)
				break
			}
			t.Errorf("phase %d at start+%v: %s", phase, e.clock.Now().Sub(start), p)
		}
		if len(problems) > 0 {
			return
		}
	}
	t.Logf("outcomes: %d hit, %d new, %d full",
		outcomes[store.OutcomeHit], outcomes[store.OutcomeNew], outcomes[store.OutcomeFull])
	if outcomes[store.OutcomeFull] == 0 || outcomes[store.OutcomeNew] == 0 {
		t.Errorf("outcomes %v: want both new and full answers, or the run did not contend for seats", outcomes)
	}
}
