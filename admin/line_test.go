package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/admin"
	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/store/memory"
	"github.com/stickyseat/stickyseat/store/storetest"
)

// lineAdmin is an Admin over a pool web with one seat and a line, u1 seated and u2, u3 waiting.
func lineAdmin(t *testing.T) (*admin.Admin, *assign.Assigner, *storetest.Clock) {
	t.Helper()
	c := storetest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	cfg := assign.Config{Pools: []assign.Pool{{Name: "web", IdleTimeout: time.Hour, Servers: []assign.Server{{Name: "s1", Quota: 1}},
		WhenFull: assign.WhenFullQueue, QueueTimeout: time.Minute, QueueMax: 10}}}
	st := memory.New(memory.Options{Clock: c.Now})
	a, err := assign.New(cfg, st, assign.Options{Clock: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"u1", "u2", "u3"} {
		a.Decide(context.Background(), assign.Request{Key: key})
		c.Advance(time.Second)
	}
	return admin.New(cfg, a, st, st, admin.Options{Clock: c.Now}), a, c
}

func TestLineInAPIAndPage(t *testing.T) {
	adm, a, _ := lineAdmin(t)
	srv := httptest.NewServer(adm.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	code, body := get("/api/queue?pool=web&places=1")
	var lv admin.LineView
	if err := json.Unmarshal([]byte(body), &lv); code != http.StatusOK || err != nil {
		t.Fatalf("GET /api/queue = %d %s (%v)", code, body, err)
	}
	if lv.Length != 2 || len(lv.Head) != 1 || lv.Head[0].Key != "u2" || lv.Head[0].Position != 1 || lv.Head[0].Waiting != "2s" || lv.Head[0].LapsesIn != "58s" {
		t.Errorf("GET /api/queue?places=1 = %+v; want length 2, head u2 at 1, waiting 2s, lapsing in 58s", lv)
	}
	if code, body := get("/api/queue?pool=nope"); code != http.StatusNotFound {
		t.Errorf("GET /api/queue for an unknown pool = %d %s; want 404", code, body)
	}

	_, page := get("/")
	for _, want := range []string{`id="line-web"`, "line: 2 waiting", "<td>1</td><td>u2</td>", "<td>2</td><td>u3</td>"} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q", want)
		}
	}

	// Removing a place: u3 moves up, u2 is gone.
	resp, err := http.PostForm(srv.URL+"/api/evict", url.Values{"pool": {"web"}, "key": {"u2"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/evict u2 = %d; want 200", resp.StatusCode)
	}
	if d := a.Decide(context.Background(), assign.Request{Key: "u3"}); d.Status != assign.StatusQueued || d.Position != 1 {
		t.Errorf("u3 after u2's place was removed = %+v; want queued at 1", d)
	}
	pools, err := adm.Pools(context.Background(), 10)
	if err != nil || len(pools) != 1 || pools[0].Line == nil || pools[0].Line.Length != 1 {
		t.Errorf("Pools().Line = %+v, %v; want one place", pools, err)
	}
}
