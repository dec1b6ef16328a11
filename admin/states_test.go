package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/admin"
	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/store/memory"
	"github.com/stickyseat/stickyseat/store/storetest"
)

const grace = 10 * time.Second

// healthAdmin is an Admin over a real Assigner whose pool web has s1 up and s2 drained.
func healthAdmin(t *testing.T) (*admin.Admin, *assign.Assigner, *storetest.Clock) {
	t.Helper()
	c := storetest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	cfg := assign.Config{Pools: []assign.Pool{{Name: "web", IdleTimeout: time.Hour, DownGrace: grace, Servers: []assign.Server{
		{Name: "s1", Quota: 2, State: assign.StateUp}, {Name: "s2", Quota: 2, State: assign.StateDrain},
	}}}}
	st := memory.New(memory.Options{Clock: c.Now})
	a, err := assign.New(cfg, st, assign.Options{Clock: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return admin.New(cfg, a, st, memory.New(memory.Options{}), admin.Options{}), a, c
}

// reportDown passes HAProxy's health report (these servers down, the others up) with a request.
func reportDown(a *assign.Assigner, servers ...string) {
	req := assign.Request{Key: "someone", Health: true}
	for _, s := range servers {
		req.Down = append(req.Down, assign.ServerRef{Pool: "web", Server: s})
	}
	a.Decide(context.Background(), req)
}

func views(t *testing.T, adm *admin.Admin) map[string]admin.ServerView {
	t.Helper()
	pools, err := adm.Pools(context.Background(), 0)
	if err != nil || len(pools) != 1 {
		t.Fatalf("Pools = %v, %v; want one pool", pools, err)
	}
	out := map[string]admin.ServerView{}
	for _, s := range pools[0].Servers {
		out[s.Name] = s
	}
	return out
}

// TestPoolsShowDecisionsState: Pools (the API, the page and the metrics) shows the state the
// decisions apply once HAProxy reports a server down, not the configured one.
func TestPoolsShowDecisionsState(t *testing.T) {
	adm, a, c := healthAdmin(t)
	check := func(step, s1, s2 string) {
		t.Helper()
		v := views(t, adm)
		if v["s1"].State != s1 || v["s2"].State != s2 {
			t.Errorf("%s: states s1 %q, s2 %q; want %q, %q", step, v["s1"].State, v["s2"].State, s1, s2)
		}
		if v["s1"].Configured != "up" || v["s2"].Configured != "drain" {
			t.Errorf("%s: configured s1 %q, s2 %q; want up, drain", step, v["s1"].Configured, v["s2"].Configured)
		}
	}
	check("before any report", "up", "drain")
	reportDown(a, "s1", "s2")
	check("reported down", "down-in-grace", "down-in-grace")
	c.Advance(grace)
	check("grace over", "down", "down")
	reportDown(a)
	check("reported up again", "up", "drain")
}

// TestPageShowsDecisionsState: the status page and /api/pools show a down server as down,
// and the drain button still follows the configured state.
func TestPageShowsDecisionsState(t *testing.T) {
	adm, a, c := healthAdmin(t)
	srv := httptest.NewServer(adm.Handler())
	t.Cleanup(srv.Close)
	reportDown(a, "s1", "s2")
	c.Advance(grace)

	page := get(t, srv.URL+"/")
	rows := map[string]string{}
	for _, m := range regexp.MustCompile(`(?s)<tr class="([^"]*)" id="server-web-(s\d)">(.*?)</tr>`).FindAllStringSubmatch(page, -1) {
		if m[1] != "down" {
			t.Errorf("page: row of %s has class %q; want down", m[2], m[1])
		}
		rows[m[2]] = m[3]
	}
	if len(rows) != 2 {
		t.Fatalf("page: server rows %v; want s1 and s2:\n%s", rows, page)
	}
	for name, want := range map[string]string{"s1": `<td>down <span class="muted">(set: up)</span></td>`, "s2": `<td>down <span class="muted">(set: drain)</span></td>`} {
		if !regexp.MustCompile(regexp.QuoteMeta(want)).MatchString(rows[name]) {
			t.Errorf("page: row of %s lacks %q:\n%s", name, want, rows[name])
		}
	}
	if !regexp.MustCompile(`>drain</button>`).MatchString(rows["s1"]) || !regexp.MustCompile(`>undrain</button>`).MatchString(rows["s2"]) {
		t.Errorf("page: buttons do not follow the configured state (s1 drain, s2 undrain):\n%s\n%s", rows["s1"], rows["s2"])
	}

	var pools []admin.PoolView
	if err := json.Unmarshal([]byte(get(t, srv.URL+"/api/pools")), &pools); err != nil || len(pools) != 1 {
		t.Fatalf("/api/pools: %v, %v", pools, err)
	}
	for _, s := range pools[0].Servers {
		if s.State != "down" {
			t.Errorf("/api/pools: %s state %q; want down", s.Name, s.State)
		}
	}
}

// plainReloader knows nothing of health: the configured state is shown.
type plainReloader struct{}

func (plainReloader) Reload(cfg assign.Config) error { return cfg.Validate() }

func TestPoolsConfiguredStateWithoutHealth(t *testing.T) {
	cfg := assign.Config{Pools: []assign.Pool{{Name: "web", IdleTimeout: time.Hour, Servers: []assign.Server{
		{Name: "s1", Quota: 1, State: assign.StateUp}, {Name: "s2", Quota: 1, State: assign.StateDrain}, {Name: "s3", Quota: 1, State: assign.StateDown},
	}}}}
	adm := admin.New(cfg, plainReloader{}, memory.New(memory.Options{}), memory.New(memory.Options{}), admin.Options{})
	v := views(t, adm)
	for name, want := range map[string]string{"s1": "up", "s2": "drain", "s3": "down"} {
		if v[name].State != want || v[name].Configured != want {
			t.Errorf("%s: state %q, configured %q; want %q for both", name, v[name].State, v[name].Configured, want)
		}
	}
}

func get(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d, %v\n%s", u, resp.StatusCode, err, b)
	}
	return string(b)
}
