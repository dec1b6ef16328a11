package metrics

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/admin"
	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/store/memory"
	"github.com/stickyseat/stickyseat/store/storetest"
)

// TestServerStateGauge: stickyseat_server_state follows the state the decisions apply, from
// HAProxy's down report through the grace to down, with exactly one state at 1.
func TestServerStateGauge(t *testing.T) {
	const grace = 10 * time.Second
	c := storetest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	cfg := assign.Config{Pools: []assign.Pool{{Name: "web", IdleTimeout: time.Hour, DownGrace: grace, Servers: []assign.Server{
		{Name: "s1", Quota: 2, State: assign.StateUp}, {Name: "s2", Quota: 2, State: assign.StateDrain},
	}}}}
	st := memory.New(memory.Options{Clock: c.Now})
	a, err := assign.New(cfg, st, assign.Options{Clock: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	adm := admin.New(cfg, a, st, memory.New(memory.Options{}), admin.Options{})
	m := New(Sources{Version: "test", Pools: adm.Pools})
	report := func(down ...string) {
		req := assign.Request{Key: "u", Health: true}
		for _, s := range down {
			req.Down = append(req.Down, assign.ServerRef{Pool: "web", Server: s})
		}
		a.Decide(context.Background(), req)
	}
	check := func(step string, want map[string]string) {
		t.Helper()
		out := scrape(t, m)
		for server, state := range want {
			for _, s := range []string{"up", "drain", "down-in-grace", "down"} {
				v := "0"
				if s == state {
					v = "1"
				}
				line := `stickyseat_server_state{pool="web",server="` + server + `",state="` + s + `"} ` + v + "\n"
				if !strings.Contains(out, line) {
					t.Errorf("%s: scrape lacks %q", step, line)
				}
			}
		}
	}
	check("configured", map[string]string{"s1": "up", "s2": "drain"})
	report("s1")
	check("s1 reported down", map[string]string{"s1": "down-in-grace", "s2": "drain"})
	c.Advance(grace)
	check("grace over", map[string]string{"s1": "down", "s2": "drain"})
	report()
	check("s1 reported up", map[string]string{"s1": "up", "s2": "drain"})
}
