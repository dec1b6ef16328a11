package redis

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stickyseat/stickyseat/store"
)

// panicHook makes go-redis panic on the first n script commands, and on the first pipeline
// of several commands, as a bug in the client or a hook would.
type panicHook struct {
	alone    atomic.Int32
	pipeline atomic.Bool
	hold     chan struct{} // while open, lone script commands wait (to queue the next calls)
}

func (h *panicHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *panicHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		if name := cmd.Name(); name == "evalsha" || name == "eval" {
			if h.alone.Add(-1) >= 0 {
				panic("hook exploded")
			}
			if h.hold != nil {
				<-h.hold
			}
		}
		return next(ctx, cmd)
	}
}

func (h *panicHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		if len(cmds) > 1 && h.pipeline.CompareAndSwap(true, false) {
			panic("pipeline hook exploded")
		}
		return next(ctx, cmds)
	}
}

// assignRecovered calls Assign the way the agent's handler does: a panic is recovered.
func assignRecovered(s *Store, req store.Request) (res store.Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("recovered: %v", r)
		}
	}()
	return s.Assign(context.Background(), req)
}

// TestBatchSurvivesPanics: a panic while a call holds a write slot must give the slot back
// (the agent recovers it), and a panic in a pipeline's own goroutine must become an error
// for its callers, not the end of the process.
func TestBatchSurvivesPanics(t *testing.T) {
	srv := startRedis(t)
	client := newClient(t, srv.URL())
	hook := &panicHook{}
	hook.alone.Store(int32(maxInFlight + 1))
	client.AddHook(hook)
	s := New(client, Options{RefreshInterval: -1, Timeout: time.Second})

	for i := range maxInFlight + 1 {
		if _, err := assignRecovered(s, wideRequest("p", fmt.Sprintf("boom-%d", i))); err == nil || !strings.Contains(err.Error(), "hook exploded") {
			t.Fatalf("call %d: %v; want the recovered panic", i, err)
		}
	}
	if inFlight, queued := batcherState(s, "p"); inFlight != 0 || queued != 0 {
		t.Fatalf("after recovered panics: %d writes in flight, %d queued; want the slots back", inFlight, queued)
	}
	if _, err := s.Assign(context.Background(), wideRequest("p", "after")); err != nil {
		t.Fatalf("Assign after recovered panics: %v", err)
	}

	// Hold both slots so that the next calls queue, then let them go: the queued calls go
	// out as one pipeline, whose hook panics.
	hook.hold = make(chan struct{})
	hook.pipeline.Store(true)
	var held []<-chan answer
	for i := range maxInFlight {
		held = append(held, assignAsync(s, 0, wideRequest("p", fmt.Sprintf("held-%d", i))))
	}
	waitBatcher(t, s, "p", maxInFlight, 0)
	var queued []<-chan answer
	for i := range 2 {
		queued = append(queued, assignAsync(s, 0, wideRequest("p", fmt.Sprintf("queued-%d", i))))
		waitBatcher(t, s, "p", maxInFlight, i+1)
	}
	close(hook.hold)
	for _, ch := range held {
		if a := <-ch; a.err != nil {
			t.Errorf("held call %q: %v", a.req.Key, a.err)
		}
	}
	for _, ch := range queued {
		if a := <-ch; a.err == nil || !strings.Contains(a.err.Error(), "pipeline panicked") {
			t.Errorf("queued call %q in the panicking pipeline: %v; want a pipeline panicked error", a.req.Key, a.err)
		}
	}
	waitBatcher(t, s, "p", 0, 0)
	if _, err := s.Assign(context.Background(), wideRequest("p", "last")); err != nil {
		t.Fatalf("Assign after the pipeline panic: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Close did not return within 5s")
	}
}
