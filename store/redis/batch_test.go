package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stickyseat/stickyseat/store"
)

// answer is one Assign call's outcome.
type answer struct {
	req     store.Request
	res     store.Result
	err     error
	elapsed time.Duration
}

// assignAsync runs Assign in its own goroutine, under a deadline of timeout when it is
// positive, and delivers the outcome on the returned channel.
func assignAsync(s *Store, timeout time.Duration, req store.Request) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		start := time.Now() // no later than the deadline's start
		ctx := context.Background()
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		res, err := s.Assign(ctx, req)
		ch <- answer{req: req, res: res, err: err, elapsed: time.Since(start)}
	}()
	return ch
}

// batcherState returns the writes in flight and the calls queued in pool.
func batcherState(s *Store, pool string) (inFlight, queued int) {
	b := s.batch.get(pool)
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inFlight, len(b.queue)
}

// waitBatcher polls until pool's batcher has inFlight writes and queued calls.
func waitBatcher(t *testing.T, s *Store, pool string, inFlight, queued int) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("%d writes in flight and %d calls queued in pool %q", inFlight, queued, pool), func() error {
		if gotInFlight, gotQueued := batcherState(s, pool); gotInFlight != inFlight || gotQueued != queued {
			return fmt.Errorf("%d in flight, %d queued", gotInFlight, gotQueued)
		}
		return nil
	})
}

// pauseScripts stops the Redis servers of admins from running scripts (CLIENT PAUSE WRITE:
// EVAL and EVALSHA wait, SCRIPT FLUSH and CLIENT UNPAUSE still run) until the returned
// function or the end of the test resumes them.
func pauseScripts(t *testing.T, admins ...*goredis.Client) (resume func()) {
	t.Helper()
	ctx := context.Background()
	for _, a := range admins {
		if err := a.Do(ctx, "CLIENT", "PAUSE", 60_000, "WRITE").Err(); err != nil {
			t.Fatalf("CLIENT PAUSE: %v", err)
		}
	}
	var once sync.Once
	resume = func() {
		once.Do(func() {
			for _, a := range admins {
				if err := a.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
					t.Errorf("CLIENT UNPAUSE: %v", err)
				}
			}
		})
	}
	t.Cleanup(resume)
	return resume
}

// wideRequest is a request in pool for key on three servers with room for everybody.
func wideRequest(pool, key string) store.Request {
	return store.Request{Pool: pool, Key: key, Idle: time.Hour, Servers: []store.Server{
		{Name: "s1", Quota: 1 << 20, Accepting: true},
		{Name: "s2", Quota: 1 << 20, Accepting: true},
		{Name: "s3", Quota: 1 << 20, Accepting: true},
	}}
}

// checkSeated checks that every answer is a new seat, without error, and the very seat Redis
// holds for its own user.
func checkSeated(t *testing.T, s *Store, answers []answer) {
	t.Helper()
	for _, a := range answers {
		if a.err != nil || a.res.Outcome != store.OutcomeNew {
			t.Errorf("Assign(%q, %q) = %+v, %v; want a new seat", a.req.Pool, a.req.Key, a.res, a.err)
			continue
		}
		uk := s.userKey(a.req.Pool, a.req.Key)
		if got, err := s.client.Get(context.Background(), uk).Result(); err != nil || got != a.res.Server {
			t.Errorf("Assign(%q, %q) answered %s; GET %s = %q, %v", a.req.Pool, a.req.Key, a.res.Server, uk, got, err)
		}
	}
}

// TestBatchConcurrent has many goroutines ask for seats at once, every user twice, under
// quotas that run out: each caller must get its own user's answer.
func TestBatchConcurrent(t *testing.T) {
	srv := startRedis(t)
	s := New(newClient(t, srv.URL()), Options{RefreshInterval: -1, Timeout: 10 * time.Second})
	const users, quota, workers = 1200, 300, 48
	servers := []store.Server{{Name: "s1", Quota: quota, Accepting: true}, {Name: "s2", Quota: quota, Accepting: true},
		{Name: "s3", Quota: quota, Accepting: true}}
	var reqs []store.Request
	for u := range users {
		req := store.Request{Pool: "p", Key: "u" + strconv.Itoa(u), Idle: time.Hour, Servers: servers}
		reqs = append(reqs, req, req)
	}
	rand.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })

	answers := make([]answer, len(reqs))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(reqs); i += workers {
				res, err := s.Assign(context.Background(), reqs[i])
				answers[i] = answer{req: reqs[i], res: res, err: err}
			}
		})
	}
	wg.Wait()

	byUser := make(map[string][]store.Result)
	for _, a := range answers {
		if a.err != nil {
			t.Fatalf("Assign(%q): %v", a.req.Key, a.err)
		}
		byUser[a.req.Key] = append(byUser[a.req.Key], a.res)
	}
	seated := make(map[string]int)
	ctx := context.Background()
	for user, rs := range byUser {
		first, second := rs[0], rs[1]
		if first.Outcome == store.OutcomeHit {
			first, second = second, first
		}
		switch {
		case first.Outcome == store.OutcomeNew && second == (store.Result{Outcome: store.OutcomeHit, Server: first.Server}):
			seated[first.Server]++
		case first.Outcome == store.OutcomeFull && second.Outcome == store.OutcomeFull:
		default:
			t.Errorf("user %s answered %+v and %+v; want new and hit on one server, or full twice", user, rs[0], rs[1])
			continue
		}
		got, err := s.client.Get(ctx, s.userKey("p", user)).Result()
		if errors.Is(err, goredis.Nil) {
			got, err = "", nil
		}
		if err != nil || got != first.Server {
			t.Errorf("user %s answered %q; Redis seats it on %q (%v)", user, first.Server, got, err)
		}
	}
	for _, srv := range servers {
		if got := seated[srv.Name]; got != quota {
			t.Errorf("%s: %d users answered with a seat; want its quota %d", srv.Name, got, quota)
		}
		if n, err := s.client.ZCard(ctx, s.serverKey("p", srv.Name)).Result(); err != nil || n != quota {
			t.Errorf("ZCARD of %s = %d, %v; want %d", srv.Name, n, err, quota)
		}
	}
	if rt, p := s.RoundTrips(), s.Pipelines(); p >= rt {
		t.Errorf("%d goroutines: %d commands in %d writes; want batches (fewer writes)", workers, rt, p)
	}
	t.Logf("%d commands in %d writes", s.RoundTrips(), s.Pipelines())
}

// TestBatchSizeBound queues calls behind writes that Redis holds, and checks that they go
// out in pipelines of at most maxBatch, each caller with its own answer.
func TestBatchSizeBound(t *testing.T) {
	srv := startRedis(t)
	s := New(newClient(t, srv.URL()), Options{RefreshInterval: -1, Timeout: 20 * time.Second})
	mustAssign(t, s, wideRequest("p", "warm-up")) // connection and script ready
	resume := pauseScripts(t, srv.Client())
	rt0, p0 := s.RoundTrips(), s.Pipelines()

	var pending []<-chan answer
	for i := range maxInFlight {
		pending = append(pending, assignAsync(s, 0, wideRequest("p", "slot-"+strconv.Itoa(i))))
	}
	waitBatcher(t, s, "p", maxInFlight, 0)
	const queued = 2*maxBatch + 7
	for i := range queued {
		pending = append(pending, assignAsync(s, 0, wideRequest("p", "queued-"+strconv.Itoa(i))))
	}
	waitBatcher(t, s, "p", maxInFlight, queued)
	resume()

	var answers []answer
	for _, ch := range pending {
		answers = append(answers, <-ch)
	}
	checkSeated(t, s, answers)
	// Every queued call was waiting when the first write ended, so the queue goes out in
	// full batches: ceil(queued/maxBatch) pipelines.
	wantPipelines := uint64(maxInFlight + (queued+maxBatch-1)/maxBatch)
	if rt, p := s.RoundTrips()-rt0, s.Pipelines()-p0; rt != maxInFlight+queued || p != wantPipelines {
		t.Errorf("%d calls, %d of them queued: %d commands in %d writes; want %d in %d", maxInFlight+queued, queued,
			rt, p, maxInFlight+queued, wantPipelines)
	}
	if inFlight, q := batcherState(s, "p"); inFlight != 0 || q != 0 {
		t.Errorf("after the answers: %d writes in flight, %d queued; want none", inFlight, q)
	}
}

// TestBatchDeadlines stalls Redis and checks that every caller gets its error at its own
// deadline, in the queue or in a pipeline that Redis holds, while a caller with a later
// deadline in the same pipeline still gets its answer when Redis resumes in time.
func TestBatchDeadlines(t *testing.T) {
	srv := startRedis(t)
	const timeout = 2 * time.Second
	s := New(newClient(t, srv.URL()), Options{RefreshInterval: -1, Timeout: timeout})
	mustAssign(t, s, wideRequest("p", "warm-up"))
	resume := pauseScripts(t, srv.Client())

	// The first calls take the write slots and give up at their deadline, which sends the
	// queued calls still waiting as one pipeline into the stalled Redis.
	const slotDeadline, shortDeadline, longDeadline = 400 * time.Millisecond, 150 * time.Millisecond, 800 * time.Millisecond
	var slots []<-chan answer
	for i := range maxInFlight {
		slots = append(slots, assignAsync(s, slotDeadline, wideRequest("p", "slot-"+strconv.Itoa(i))))
	}
	waitBatcher(t, s, "p", maxInFlight, 0)
	// Queued one after the other: the pipeline holds long, then patient.
	short := assignAsync(s, shortDeadline, wideRequest("p", "short")) // gives up while queued
	waitBatcher(t, s, "p", maxInFlight, 1)
	long := assignAsync(s, longDeadline, wideRequest("p", "long")) // gives up in the pipeline
	waitBatcher(t, s, "p", maxInFlight, 2)
	patient := assignAsync(s, 0, wideRequest("p", "patient")) // the store's timeout, same pipeline
	waitBatcher(t, s, "p", maxInFlight, 3)
	p0 := s.Pipelines()

	tests := []struct {
		ch   <-chan answer
		want time.Duration
	}{
		{slots[0], slotDeadline},
		{short, shortDeadline},
		{long, longDeadline},
	}
	for _, tt := range tests {
		a := <-tt.ch
		t.Logf("Assign(%q) with Redis stalled: %v after %v", a.req.Key, a.err, a.elapsed)
		if a.err == nil {
			t.Errorf("Assign(%q) with Redis stalled = %+v, nil error; want an error", a.req.Key, a.res)
		}
		// Generous margin for a loaded machine: the point is that nobody waits for Redis.
		if a.elapsed < tt.want || a.elapsed > tt.want+300*time.Millisecond {
			t.Errorf("Assign(%q) returned after %v; want about %v", a.req.Key, a.elapsed, tt.want)
		}
	}
	for _, ch := range slots[1:] {
		<-ch
	}
	resume()
	a := <-patient
	if a.err != nil || a.res.Outcome != store.OutcomeNew || a.elapsed >= timeout {
		t.Errorf("Assign(patient) in the pipeline with long = %+v, %v after %v; want a new seat once Redis resumed, before %v",
			a.res, a.err, a.elapsed, timeout)
	}
	if p := s.Pipelines() - p0; p != 1 {
		t.Errorf("%d pipelines sent to the stalled Redis; want 1 (long and patient)", p)
	}
}

// TestBatchNoScript has Redis lose the script while a pipeline of calls waits: every call of
// the pipeline meets NOSCRIPT and goes again as EVAL, and each caller gets its own seat.
func TestBatchNoScript(t *testing.T) {
	srv := startRedis(t)
	s := New(newClient(t, srv.URL()), Options{RefreshInterval: -1, Timeout: 20 * time.Second})
	mustAssign(t, s, wideRequest("p", "warm-up"))
	admin := srv.Client()
	resume := pauseScripts(t, admin)

	// The slot holders give up while Redis is paused, so that no EVAL of theirs reloads the
	// script before the pipeline of queued calls runs.
	var slots []<-chan answer
	for i := range maxInFlight {
		slots = append(slots, assignAsync(s, time.Second, wideRequest("p", "slot-"+strconv.Itoa(i))))
	}
	waitBatcher(t, s, "p", maxInFlight, 0)
	const queued = 20
	var pending []<-chan answer
	for i := range queued {
		pending = append(pending, assignAsync(s, 0, wideRequest("p", "queued-"+strconv.Itoa(i))))
	}
	waitBatcher(t, s, "p", maxInFlight, queued)
	rt0, p0 := s.RoundTrips(), s.Pipelines()
	for _, ch := range slots {
		if a := <-ch; a.err == nil {
			t.Fatalf("Assign(%q) with Redis paused = %+v, nil error; want an error", a.req.Key, a.res)
		}
	}
	if err := admin.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatalf("SCRIPT FLUSH: %v", err)
	}
	waitBatcher(t, s, "p", 1, 0) // the queue went out as one pipeline
	resume()

	var answers []answer
	for _, ch := range pending {
		answers = append(answers, <-ch)
	}
	checkSeated(t, s, answers)
	if rt, p := s.RoundTrips()-rt0, s.Pipelines()-p0; rt != 2*queued || p != 2 {
		t.Errorf("%d queued calls after SCRIPT FLUSH: %d commands in %d writes; want %d in 2 (EVALSHA, then EVAL)",
			queued, rt, p, 2*queued)
	}
	if got := s.Errors(); got != maxInFlight {
		t.Errorf("Errors() = %d; want %d (the slot holders')", got, maxInFlight)
	}
}

// TestCloseWaitsForBatches closes the store while calls wait in the queue and in Redis:
// Close returns once they all have their answers, later calls fail, and no goroutine of the
// store is left.
func TestCloseWaitsForBatches(t *testing.T) {
	srv := startRedis(t)
	s, err := Open(context.Background(), srv.URL(), Options{RefreshInterval: -1, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	mustAssign(t, s, wideRequest("p", "warm-up"))
	resume := pauseScripts(t, srv.Client())
	var pending []<-chan answer
	for i := range maxInFlight + 10 {
		pending = append(pending, assignAsync(s, 0, wideRequest("p", "u"+strconv.Itoa(i))))
		if i == maxInFlight-1 {
			waitBatcher(t, s, "p", maxInFlight, 0)
		}
	}
	waitBatcher(t, s, "p", maxInFlight, 10)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	waitFor(t, 10*time.Second, "Close refusing new calls", func() error {
		b := s.batch.get("p")
		b.mu.Lock()
		defer b.mu.Unlock()
		if !b.closed {
			return errors.New("not closed yet")
		}
		return nil
	})
	if _, err := s.Assign(context.Background(), wideRequest("p", "late")); !errors.Is(err, errClosed) {
		t.Errorf("Assign after Close: %v; want %v", err, errClosed)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v with calls still in Redis; want it to wait", err)
	default:
	}
	resume()
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	var answers []answer
	for _, ch := range pending {
		answers = append(answers, <-ch)
	}
	checkSeatedClosed(t, answers)
	waitFor(t, 10*time.Second, "no goroutine of the batcher left", func() error {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if strings.Contains(stacks, "store/redis.(*batcher)") {
			return errors.New("a batcher goroutine is still running")
		}
		return nil
	})
}

// checkSeatedClosed checks the answers of calls made before Close: all seated, without error.
func checkSeatedClosed(t *testing.T, answers []answer) {
	t.Helper()
	for _, a := range answers {
		if a.err != nil || a.res.Outcome != store.OutcomeNew {
			t.Errorf("Assign(%q) made before Close = %+v, %v; want a new seat", a.req.Key, a.res, a.err)
		}
	}
}

// TestCanceledContext checks that a call whose context is already canceled fails without
// going to Redis: a cancellation is noticed when the call starts.
func TestCanceledContext(t *testing.T) {
	srv := startRedis(t)
	s := New(srv.Client(), Options{RefreshInterval: -1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got, err := s.Assign(ctx, wideRequest("p", "u")); !errors.Is(err, context.Canceled) {
		t.Errorf("Assign(canceled context) = %+v, %v; want %v", got, err, context.Canceled)
	}
	if got := s.RoundTrips(); got != 0 {
		t.Errorf("RoundTrips() = %d; want 0", got)
	}
}
