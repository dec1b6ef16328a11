package redis

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Batching: a script call goes out at once, on its caller's goroutine, while fewer than
// maxInFlight writes to Redis are waiting for their replies. Calls arriving while all of them
// are busy queue up, and when a write's replies are in, the queue (up to maxBatch calls) goes
// out as one pipeline: one write(2) and one read for all of them instead of one each, and one
// connection checkout. Without concurrency nothing queues, so a lone call pays nothing.
//
// Each pool has a batcher of its own: a pool's keys live on one Cluster node, so a slow or
// failing node holds up the calls of its own pools only, as it did before batching.
const (
	// maxInFlight bounds the writes (lone calls or pipelines) waiting for Redis at a time.
	// Two keep Redis busy while the agent handles the replies of the other.
	maxInFlight = 2
	// maxBatch bounds the calls of one pipeline, so that one write stays small (a call is
	// a few hundred bytes) and the first caller of a batch does not wait for a huge one.
	maxBatch = 64
	// maxPoolBatchers bounds the batchers, one per pool; pools come from the configuration,
	// and any beyond share one.
	maxPoolBatchers = 256
)

// errClosed answers calls made after Close.
var errClosed = errors.New("store closed")

// States of a queued call: it is taken into a pipeline unless its deadline came first, and
// answered by the pipeline unless its deadline came first; exactly one of them answers.
const (
	callQueued uint32 = iota
	callTaken
	callAnswered
	callExpired
)

// scriptCall is one script call waiting in the queue or in a pipeline.
type scriptCall struct {
	ctx      context.Context // the caller's, for its values: it never cancels the pipeline
	deadline time.Time
	cmd      []any
	state    atomic.Uint32

	// reply and err are written by whoever moves state to answered or expired, before done
	// receives, and read by the caller after.
	reply any
	err   error
	done  chan struct{} // buffered: the one answer never waits
}

// batchers holds the batcher of each pool.
type batchers struct {
	s      *Store
	byPool atomic.Pointer[map[string]*batcher] // replaced, never changed: read without mu
	shared *batcher                            // for pools beyond maxPoolBatchers

	mu     sync.Mutex // for adding a pool and for closed
	closed bool
}

// get returns the batcher of pool, or nil after close.
func (bs *batchers) get(pool string) *batcher {
	if m := bs.byPool.Load(); m != nil {
		if b, ok := (*m)[pool]; ok {
			return b
		}
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if bs.closed {
		return nil
	}
	old := bs.byPool.Load()
	if old != nil {
		if b, ok := (*old)[pool]; ok {
			return b
		}
		if len(*old) >= maxPoolBatchers {
			return bs.shared
		}
	}
	m := make(map[string]*batcher, 1)
	if old != nil {
		m = maps.Clone(*old)
	}
	b := &batcher{s: bs.s}
	m[pool] = b
	bs.byPool.Store(&m)
	return b
}

// close refuses new calls and waits for the calls made before (see batcher.close).
func (bs *batchers) close() {
	bs.mu.Lock()
	bs.closed = true
	all := []*batcher{bs.shared}
	if m := bs.byPool.Load(); m != nil {
		for _, b := range *m {
			all = append(all, b)
		}
	}
	bs.mu.Unlock()
	for _, b := range all {
		b.close()
	}
}

// batcher sends one pool's script calls, pipelining those that arrive while Redis is busy.
type batcher struct {
	s        *Store
	template atomic.Pointer[callTemplate] // of the pool's last call

	mu       sync.Mutex
	queue    []*scriptCall
	sending  [][]*scriptCall // the pipelines in flight
	inFlight int             // writes waiting for Redis: lone calls and pipelines
	closed   bool            // Close was called: no new calls
	// busy counts the writes in flight, so that Close can wait for them. It moves with
	// inFlight, under mu.
	busy sync.WaitGroup
	// expiry answers the queued and pipelined calls whose deadline has passed; it is set
	// for the earliest deadline among them (expiresAt, zero when stopped). One timer per
	// pool instead of one per call: queued callers wait on nothing else.
	expiry    *time.Timer
	expiresAt time.Time
}

// call runs the script command cmd once: at once when a write slot is free, otherwise in the
// next pipeline. It returns when the reply is in or by deadline, whichever comes first; ctx
// provides values only.
func (b *batcher) call(ctx context.Context, deadline time.Time, cmd []any) (any, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, errClosed
	}
	if b.inFlight < maxInFlight {
		// A free slot implies an empty queue: a finishing write hands its slot to the
		// queue rather than freeing it while calls wait.
		b.inFlight++
		b.busy.Add(1)
		b.mu.Unlock()
		// Deferred: a panic below (in go-redis or a hook) is recovered by the agent's
		// handler, and must not keep the slot, or the pool would queue forever.
		defer b.release()
		cctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
		defer cancel()
		return b.s.runOne(cctx, cmd)
	}
	c := &scriptCall{ctx: ctx, deadline: deadline, cmd: cmd, done: make(chan struct{}, 1)}
	b.queue = append(b.queue, c)
	if b.expiresAt.IsZero() || deadline.Before(b.expiresAt) {
		b.expireAtLocked(deadline)
	}
	b.mu.Unlock()
	<-c.done
	return c.reply, c.err
}

// release ends a write: its slot goes to a pipeline of the queued calls, if any.
func (b *batcher) release() {
	b.mu.Lock()
	batch := b.takeLocked()
	if len(batch) == 0 {
		b.inFlight--
		b.busy.Done()
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	// The caller that held the slot returns now; the queued calls wait until their own
	// deadlines, which the pipeline's goroutine does not share.
	go b.pipeline(batch)
}

// pipeline sends batch and the batches queued meanwhile, then gives its slot back.
func (b *batcher) pipeline(batch []*scriptCall) {
	for len(batch) > 0 {
		b.runBatch(batch)
		b.mu.Lock()
		b.sending = slices.DeleteFunc(b.sending, func(s []*scriptCall) bool { return &s[0] == &batch[0] })
		batch = b.takeLocked()
		if len(batch) == 0 {
			b.inFlight--
			b.busy.Done()
		}
		b.mu.Unlock()
	}
}

// runBatch sends one pipeline. It runs on a goroutine of its own, outside the agent's
// handlers and their recover: a panic (in go-redis or a hook) is answered to the batch's
// callers as an error instead of ending the process.
func (b *batcher) runBatch(batch []*scriptCall) {
	defer func() {
		if r := recover(); r != nil {
			// Each caller's Assign counts and logs the error.
			err := fmt.Errorf("redis pipeline panicked: %v", r)
			for _, c := range batch {
				c.answer(nil, err)
			}
		}
	}()
	b.s.runBatch(batch)
}

// takeLocked removes up to maxBatch calls from the head of the queue, leaving out those whose
// deadline has passed, and records them as sending.
func (b *batcher) takeLocked() []*scriptCall {
	var batch []*scriptCall
	n := 0
	for n < len(b.queue) && len(batch) < maxBatch {
		c := b.queue[n]
		n++
		if c.state.CompareAndSwap(callQueued, callTaken) {
			batch = append(batch, c)
		}
	}
	rest := copy(b.queue, b.queue[n:])
	clear(b.queue[rest:])
	b.queue = b.queue[:rest]
	if len(batch) > 0 {
		b.sending = append(b.sending, batch)
	}
	return batch
}

// expireAtLocked sets the expiry timer for t.
func (b *batcher) expireAtLocked(t time.Time) {
	b.expiresAt = t
	if b.expiry == nil {
		b.expiry = time.AfterFunc(time.Until(t), b.expire)
		return
	}
	b.expiry.Reset(time.Until(t))
}

// expire answers the waiting calls whose deadline has passed with context.DeadlineExceeded
// and sets the timer for the next deadline.
func (b *batcher) expire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	var next time.Time
	check := func(c *scriptCall) {
		state := c.state.Load()
		if state != callQueued && state != callTaken {
			return
		}
		if c.deadline.After(now) {
			if next.IsZero() || c.deadline.Before(next) {
				next = c.deadline
			}
			return
		}
		if c.state.CompareAndSwap(state, callExpired) {
			c.err = context.DeadlineExceeded
			c.done <- struct{}{}
		}
	}
	for _, c := range b.queue {
		check(c)
	}
	for _, batch := range b.sending {
		for _, c := range batch {
			check(c)
		}
	}
	b.expiresAt = time.Time{}
	if !next.IsZero() {
		b.expireAtLocked(next)
	}
}

// close refuses new calls and waits until the calls accepted before, queued ones included,
// have their answers (each by its deadline).
func (b *batcher) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.busy.Wait()
	b.mu.Lock()
	if b.expiry != nil {
		b.expiry.Stop()
		b.expiresAt = time.Time{}
	}
	b.mu.Unlock()
}

// answer hands the reply to the caller, unless its deadline answered it already.
func (c *scriptCall) answer(reply any, err error) {
	if !c.state.CompareAndSwap(callTaken, callAnswered) {
		return
	}
	if errors.Is(err, goredis.Nil) {
		reply, err = nil, errors.New("script returned nil")
	}
	c.reply, c.err = reply, err
	c.done <- struct{}{}
}

// runOne sends the script command alone, then as EVAL when Redis lost the script (restart,
// failover, SCRIPT FLUSH).
func (s *Store) runOne(ctx context.Context, cmd []any) (any, error) {
	s.roundTrips.Add(1)
	s.pipelines.Add(1)
	c := newCmd(ctx, cmd)
	err := s.client.Process(ctx, c)
	if err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") {
		s.roundTrips.Add(1)
		s.pipelines.Add(1)
		c = newCmd(ctx, evalCommand(cmd))
		err = s.client.Process(ctx, c)
	}
	if errors.Is(err, goredis.Nil) {
		return nil, errors.New("script returned nil")
	}
	return c.Val(), err
}

// runBatch sends the calls of batch as one pipeline and answers each caller with its own
// reply or error. Calls that met NOSCRIPT (Redis lost the script) go again in a second
// pipeline, as EVAL, which loads it. The pipeline lives until the latest deadline of its
// calls: each caller is answered at its own (expire).
func (s *Store) runBatch(batch []*scriptCall) {
	deadline := batch[0].deadline
	for _, c := range batch[1:] {
		if c.deadline.After(deadline) {
			deadline = c.deadline
		}
	}
	ctx, cancel := context.WithDeadline(context.WithoutCancel(batch[0].ctx), deadline)
	defer cancel()
	if len(batch) == 1 {
		batch[0].answer(s.runOne(ctx, batch[0].cmd))
		return
	}

	cmds, execErr := s.pipelined(ctx, batch, func(c *scriptCall) []any { return c.cmd })
	var lost []*scriptCall
	for i, cmd := range cmds {
		reply, err := result(cmd, execErr)
		if err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") {
			lost = append(lost, batch[i])
			continue
		}
		batch[i].answer(reply, err)
	}
	if len(lost) == 0 {
		return
	}
	cmds, execErr = s.pipelined(ctx, lost, func(c *scriptCall) []any { return evalCommand(c.cmd) })
	for i, cmd := range cmds {
		lost[i].answer(result(cmd, execErr))
	}
}

// pipelined sends the command of each call, built by command, in one pipeline, and returns
// them with their replies or errors, and the first error.
func (s *Store) pipelined(ctx context.Context, batch []*scriptCall, command func(*scriptCall) []any) ([]*goredis.Cmd, error) {
	s.roundTrips.Add(uint64(len(batch)))
	s.pipelines.Add(1)
	cmds := make([]*goredis.Cmd, len(batch))
	queued := make([]goredis.Cmder, len(batch))
	for i, c := range batch {
		cmds[i] = newCmd(ctx, command(c))
		queued[i] = cmds[i]
	}
	pipe := s.client.Pipeline()
	if err := pipe.BatchProcess(ctx, queued...); err != nil {
		return cmds, err
	}
	_, err := pipe.Exec(ctx)
	return cmds, err
}

// result is a pipelined command's reply or error. go-redis gives every command of a failed
// pipeline the failure; should one come back with neither reply nor error, the pipeline's
// error stands for it.
func result(cmd *goredis.Cmd, execErr error) (any, error) {
	reply, err := cmd.Result()
	if reply == nil && err == nil && execErr != nil {
		return nil, execErr
	}
	return reply, err
}
