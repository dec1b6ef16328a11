package redis

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/store"
)

func TestNoScript(t *testing.T) {
	srv := startRedis(t)
	s := New(srv.Client(), Options{RefreshInterval: -1})
	mustAssign(t, s, request("p", "u1"))
	if err := srv.Client().ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatalf("SCRIPT FLUSH: %v", err)
	}
	tests := []struct {
		key            string
		want           store.Outcome
		wantRoundTrips uint64
	}{
		{"u1", store.OutcomeHit, 2}, // EVALSHA → NOSCRIPT → EVAL
		{"u2", store.OutcomeNew, 1}, // EVAL loaded it again
	}
	for _, tt := range tests {
		before := s.RoundTrips()
		if got := mustAssign(t, s, request("p", tt.key)); got.Outcome != tt.want {
			t.Errorf("Assign(%q) after SCRIPT FLUSH = %+v; want %v", tt.key, got, tt.want)
		}
		if rt := s.RoundTrips() - before; rt != tt.wantRoundTrips {
			t.Errorf("Assign(%q): %d round trips; want %d", tt.key, rt, tt.wantRoundTrips)
		}
	}
	if got := s.Errors(); got != 0 {
		t.Errorf("Errors() = %d; want 0", got)
	}
}

func TestTimeout(t *testing.T) {
	srv := startRedis(t)
	const timeout = 100 * time.Millisecond
	const pause = time.Second
	s := New(newClient(t, srv.URL()), Options{Timeout: timeout})
	mustAssign(t, s, request("p", "warm-up")) // connection and script ready

	admin := srv.Client()
	if err := admin.Do(context.Background(), "CLIENT", "PAUSE", pause.Milliseconds(), "ALL").Err(); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	begin := time.Now()
	got, err := s.Assign(context.Background(), request("p", "u1"))
	elapsed := time.Since(begin)
	if err == nil {
		t.Fatalf("Assign during CLIENT PAUSE = %+v, nil error; want an error", got)
	}
	t.Logf("Assign during CLIENT PAUSE returned after %v: %v", elapsed, err)
	// The pool is named; the user key never is (errors reach logs above Debug).
	if !strings.Contains(err.Error(), `redis assign in pool "p"`) || strings.Contains(err.Error(), "u1") {
		t.Errorf("Assign error %q; want it to name the pool and not the user key", err)
	}
	// Generous margin: only shows that the call gave up on its own deadline, not on the pause.
	if elapsed > pause/2 {
		t.Errorf("Assign returned after %v; want about %v, well before the %v pause ends", elapsed, timeout, pause)
	}
	if got := s.Errors(); got != 1 {
		t.Errorf("Errors() = %d; want 1", got)
	}
}

func TestOutage(t *testing.T) {
	srv := startRedis(t)
	clock := newFakeClock()
	s := New(newClient(t, srv.URL()), Options{Clock: clock.c.Now, Timeout: 500 * time.Millisecond})
	ctx := context.Background()
	held := mustAssign(t, s, request("p", "cached"))

	srv.Stop()
	// Past the refresh interval, so that the cached user has to ask Redis.
	clock.c.Advance(2 * DefaultRefreshInterval)
	if got, err := s.Assign(ctx, request("p", "cached")); err != nil || got != (store.Result{Outcome: store.OutcomeHit, Server: held.Server}) {
		t.Errorf("Assign(cached) during outage = %+v, %v; want hit on %s, nil error", got, err, held.Server)
	}
	if got, err := s.Assign(ctx, request("p", "newcomer")); err == nil {
		t.Errorf("Assign(newcomer) during outage = %+v, nil error; want an error", got)
	}
	if got := s.Errors(); got != 2 {
		t.Errorf("Errors() = %d; want 2 (the cached answer counts too)", got)
	}
	// Once the seat's idle time has run out, the cache no longer covers the user.
	clock.c.Advance(time.Hour)
	if got, err := s.Assign(ctx, request("p", "cached")); err == nil {
		t.Errorf("Assign(cached) after its idle time during outage = %+v, nil error; want an error", got)
	}

	srv.Start()
	waitFor(t, 10*time.Second, "store answering after restart", func() error {
		got, err := s.Assign(ctx, request("p", "newcomer"))
		if err == nil && got.Outcome != store.OutcomeNew {
			t.Fatalf("Assign(newcomer) after restart = %+v; want new", got)
		}
		return err
	})
}

// TestBackAtOnce: after pool_size dials in a row fail, go-redis stops dialing and probes the
// server once a second, so a Redis that was restarted could go unused for up to a second. A
// refused dial must not count as one: the first call after Redis listens again gets its answer.
// (Without that, this test passes only when go-redis's probe happens to land between the
// restart and the call, a few milliseconds out of its second.)
func TestBackAtOnce(t *testing.T) {
	// Without the hold, a refusal is never answered from memory: the call after the restart
	// dials. TestRefusalHeld covers the hold.
	defer func(h time.Duration) { refusalHold = h }(refusalHold)
	refusalHold = 0
	srv := startRedis(t)
	s := New(newClient(t, srv.URL()+"?pool_size=2"), Options{Timeout: 300 * time.Millisecond, RefreshInterval: -1})
	ctx := context.Background()
	mustAssign(t, s, request("p", "before"))

	srv.Stop()
	for _, key := range []string{"down1", "down2", "down3", "down4"} {
		if got, err := s.Assign(ctx, request("p", key)); err == nil {
			t.Fatalf("Assign(%q) with Redis stopped = %+v, nil error; want an error", key, got)
		} else if !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("Assign(%q) with Redis stopped: %v; want the dial's error (connection refused)", key, err)
		}
	}
	srv.Start()
	if got, err := s.Assign(ctx, request("p", "after")); err != nil || got.Outcome != store.OutcomeNew {
		t.Errorf("first Assign after Redis is back = %+v, %v; want a new seat", got, err)
	}
}
