package agent

import (
	"context"
	"sync"
	"time"
)

// deadlineContext is the context of one decision of a decider that may block (Redis; one
// that never blocks gets none, see Decider): a deadline whose timer starts only when
// something first waits on Done. context.WithTimeout arms a timer for every decision, and
// that was ~40% of the bytes the agent allocated per decision (alloc profile), though a
// decision that finds its answer in the hit cache never waits. A store that waits calls
// Done, directly or by deriving a context, and gets a channel closed at the deadline.
type deadlineContext struct {
	deadline time.Time

	mu     sync.Mutex
	done   chan struct{} // nil until Done is called
	timer  *time.Timer
	err    error
	afters map[*func()]struct{} // AfterFunc callbacks not yet run or stopped
}

var _ context.Context = (*deadlineContext)(nil)

// newDeadlineContext returns a context that expires d from now and its cancel function,
// to be called when the decision is over (as with context.WithTimeout).
func newDeadlineContext(d time.Duration) (*deadlineContext, context.CancelFunc) {
	c := &deadlineContext{deadline: time.Now().Add(d)}
	return c, c.cancel
}

func (c *deadlineContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *deadlineContext) Value(any) any { return nil }

// Done returns a channel closed at the deadline, starting its timer on the first call.
func (c *deadlineContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		} else {
			c.armLocked()
		}
	}
	return c.done
}

// AfterFunc runs f in its own goroutine once the context ends, like context.AfterFunc.
// Contexts derived from this one (context.WithTimeout in a store) use it instead of
// starting a goroutine to watch Done.
func (c *deadlineContext) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	c.armLocked()
	if c.afters == nil {
		c.afters = make(map[*func()]struct{})
	}
	key := &f
	c.afters[key] = struct{}{}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.afters[key]
		delete(c.afters, key)
		return ok
	}
}

// armLocked starts the deadline's timer unless it runs already.
func (c *deadlineContext) armLocked() {
	if c.timer != nil {
		return
	}
	wait := time.Until(c.deadline)
	if wait <= 0 {
		c.endLocked(context.DeadlineExceeded)
		return
	}
	c.timer = time.AfterFunc(wait, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.endLocked(context.DeadlineExceeded)
	})
}

// Err reports context.DeadlineExceeded from the deadline on, whether or not Done was called,
// and context.Canceled once the decision is over.
func (c *deadlineContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && !time.Now().Before(c.deadline) {
		c.endLocked(context.DeadlineExceeded)
	}
	return c.err
}

// cancel ends the context when the decision is over and stops its timer.
func (c *deadlineContext) cancel() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endLocked(context.Canceled)
}

// endLocked ends the context with err (the first cause wins): Done closes and the
// AfterFunc callbacks start.
func (c *deadlineContext) endLocked(err error) {
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.err != nil {
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	for key := range c.afters {
		go (*key)()
	}
	c.afters = nil
}
