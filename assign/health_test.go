package assign_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/store/memory"
)

// TestServerStates: the states operators see are the ones the decisions apply, from
// HAProxy's report through the down grace (on the injected clock, with or without a
// request in between) to down, and back when HAProxy reports the server up.
func TestServerStates(t *testing.T) {
	const grace = 10 * time.Second
	for _, policy := range []assign.DownPolicy{assign.DownMove, assign.DownKeep} {
		t.Run(policy.String(), func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			p := assign.Pool{Name: "web", IdleTimeout: idle, DownGrace: grace, DownPolicy: policy, Servers: []assign.Server{
				up("s1", 2), up("s2", 2),
				{Name: "s3", Quota: 1, State: assign.StateDrain},
				{Name: "s4", Quota: 1, State: assign.StateDown},
			}}
			a, err := assign.New(assign.Config{Pools: []assign.Pool{p}}, memory.New(memory.Options{Clock: clock.Now}), assign.Options{Clock: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			const (
				U = assign.EffectiveUp
				R = assign.EffectiveDrain
				G = assign.EffectiveDownInGrace
				D = assign.EffectiveDown
			)
			check := func(step string, want map[string]assign.EffectiveState) {
				t.Helper()
				if got := a.ServerStates("web"); !maps.Equal(got, want) {
					t.Errorf("%s: ServerStates = %v; want %v", step, got, want)
				}
			}
			decide := func(key string, down ...string) assign.Decision {
				req := assign.Request{Key: key, Health: true}
				for _, s := range down {
					req.Down = append(req.Down, assign.ServerRef{Pool: "web", Server: s})
				}
				return a.Decide(context.Background(), req)
			}
			configured := map[string]assign.EffectiveState{"s1": U, "s2": U, "s3": R, "s4": D}
			check("configured", configured)
			if d := decide("u1"); d.Server != "s1" {
				t.Fatalf("u1 = %s %q; want a seat on s1", d.Status, d.Server)
			}
			check("all reported up", configured)

			// HAProxy reports s1 and the drained s3 down: in grace, s1 takes no one new.
			if d := decide("x", "s1", "s3"); d.Status != assign.StatusNew || d.Server != "s2" {
				t.Errorf("newcomer while s1 is down = %s %q; want new on s2", d.Status, d.Server)
			}
			check("reported down", map[string]assign.EffectiveState{"s1": G, "s2": U, "s3": G, "s4": D})
			clock.Advance(grace - time.Nanosecond)
			check("just before the grace ends", map[string]assign.EffectiveState{"s1": G, "s2": U, "s3": G, "s4": D})
			if d := decide("u1", "s1", "s3"); d.Status != assign.StatusHit || d.Server != "s1" {
				t.Errorf("u1 in the grace = %s %q; want hit on s1 (seat kept)", d.Status, d.Server)
			}

			// The grace ends with no request: the state is the one the next decision applies.
			clock.Advance(time.Nanosecond)
			check("grace over", map[string]assign.EffectiveState{"s1": D, "s2": U, "s3": D, "s4": D})
			wantStatus, wantServer := assign.StatusMoved, "s2"
			if policy == assign.DownKeep {
				wantStatus, wantServer = assign.StatusHit, "s1"
			}
			if d := decide("u1", "s1", "s3"); d.Status != wantStatus || d.Server != wantServer {
				t.Errorf("u1 after the grace = %s %q; want %s %q", d.Status, d.Server, wantStatus, wantServer)
			}

			// A report without s1 and s3 brings them back to their configured state.
			decide("u1")
			check("reported up again", configured)
			if got := a.ServerStates("nope"); got != nil {
				t.Errorf("ServerStates of an unknown pool = %v; want nil", got)
			}
		})
	}
}

func TestEffectiveStateString(t *testing.T) {
	for st, want := range map[assign.EffectiveState]string{
		assign.EffectiveUp: "up", assign.EffectiveDrain: "drain", assign.EffectiveDownInGrace: "down-in-grace",
		assign.EffectiveDown: "down", assign.EffectiveDown + 1: "effective(4)",
	} {
		if got := st.String(); got != want {
			t.Errorf("EffectiveState(%d).String() = %q; want %q", uint8(st), got, want)
		}
	}
}
