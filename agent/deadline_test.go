package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/agent/spop"
	"github.com/stickyseat/stickyseat/assign"
)

// waitDone fails the test unless ch closes within a bound far above any deadline used here.
func waitDone(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not close within 5s", what)
	}
}

func TestDeadlineContextErrWithoutTimer(t *testing.T) {
	ctx, cancel := newDeadlineContext(time.Hour)
	defer cancel()
	if err := ctx.Err(); err != nil {
		t.Fatalf("Err() before the deadline = %v; want nil", err)
	}
	if ctx.timer != nil || ctx.done != nil {
		t.Errorf("Err() armed a timer or made a channel; only Done and AfterFunc may")
	}
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) < 59*time.Minute {
		t.Errorf("Deadline() = %v, %v; want about an hour ahead, true", dl, ok)
	}

	past, cancelPast := newDeadlineContext(-time.Millisecond)
	defer cancelPast()
	if err := past.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Err() after the deadline = %v; want DeadlineExceeded", err)
	}
	waitDone(t, "Done() of an expired context", past.Done())
}

func TestDeadlineContextDoneAtDeadline(t *testing.T) {
	ctx, cancel := newDeadlineContext(20 * time.Millisecond)
	defer cancel()
	start := time.Now()
	waitDone(t, "Done()", ctx.Done())
	if took := time.Since(start); took < 15*time.Millisecond {
		t.Errorf("Done() closed after %v; want no earlier than the 20ms deadline", took)
	}
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Err() = %v; want DeadlineExceeded", err)
	}
	cancel()
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Err() after cancel = %v; want the first cause, DeadlineExceeded", err)
	}
}

func TestDeadlineContextCancel(t *testing.T) {
	ctx, cancel := newDeadlineContext(time.Hour)
	done := ctx.Done()
	cancel()
	waitDone(t, "Done() taken before cancel", done)
	if err := ctx.Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("Err() after cancel = %v; want Canceled", err)
	}
	waitDone(t, "Done() taken after cancel", ctx.Done())
	if ctx.timer.Stop() {
		t.Errorf("cancel left the timer running")
	}
}

func TestDeadlineContextDerived(t *testing.T) {
	// A store derives its own shorter or longer deadline; the parent's must still end it.
	ctx, cancel := newDeadlineContext(20 * time.Millisecond)
	defer cancel()
	child, cancelChild := context.WithTimeout(ctx, time.Hour)
	defer cancelChild()
	waitDone(t, "Done() of a context derived with a later deadline", child.Done())
	if err := child.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("derived Err() = %v; want DeadlineExceeded", err)
	}

	ended, cancelEnded := newDeadlineContext(time.Hour)
	cancelEnded()
	late, cancelLate := context.WithCancel(ended)
	defer cancelLate()
	waitDone(t, "Done() of a context derived from a cancelled one", late.Done())
}

func TestDeadlineContextAfterFunc(t *testing.T) {
	ctx, cancel := newDeadlineContext(time.Hour)
	ran := make(chan struct{})
	context.AfterFunc(ctx, func() { close(ran) })
	never := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { close(never) })
	if !stop() {
		t.Fatalf("stop() before the end = false; want true")
	}
	cancel()
	waitDone(t, "AfterFunc callback", ran)
	select {
	case <-never:
		t.Errorf("a stopped AfterFunc callback ran")
	default:
	}
	if stop() {
		t.Errorf("second stop() = true; want false")
	}
}

// deadlineDecider records whether its context had a deadline.
type deadlineDecider struct {
	never bool
	had   chan bool
}

func (d *deadlineDecider) NeverBlocks() bool { return d.never }

func (d *deadlineDecider) Decide(ctx context.Context, _ assign.Request) assign.Decision {
	_, ok := ctx.Deadline()
	d.had <- ok
	return assign.Decision{Status: assign.StatusHit, Server: "s1"}
}

// TestDecisionDeadlineUnlessNeverBlocks: a decider that promises never to wait gets no
// deadline context (the memory store's case); any other gets Options.DecisionTimeout.
func TestDecisionDeadlineUnlessNeverBlocks(t *testing.T) {
	for _, never := range []bool{false, true} {
		d := &deadlineDecider{never: never, had: make(chan bool, 1)}
		_, addr, _ := startAgent(t, d, Options{DecisionTimeout: time.Second})
		c := dial(t, addr)
		if _, err := c.Notify(1, 1, msg(arg("key", spop.Str("alice")))); err != nil {
			t.Fatal(err)
		}
		if had := <-d.had; had == never {
			t.Errorf("NeverBlocks() = %v: decision context has a deadline = %v; want %v", never, had, !never)
		}
	}
}
