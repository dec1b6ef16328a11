package haproxy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/assign"
)

// fastPathCase is one form of the fast path the routing test runs.
type fastPathCase struct {
	name  string
	mode  string
	key   string
	track bool
}

var fastPathCases = []fastPathCase{
	{"http", ModeHTTP, "req.hdr(x-user)", false},
	{"http tracking connections", ModeHTTP, "req.hdr(x-user)", true},
	{"tcp layer 7 key", ModeTCP, "req.hdr(x-user)", false},
	{"tcp layer 7 key tracking connections", ModeTCP, "req.hdr(x-user)", true},
}

// TestRoutingFastPath runs the fast path on a real haproxy: a user the agent gave a server
// goes there again without an SPOE exchange while their entry lives; refusals, keys that are
// too long and forgotten or expired entries ask the agent; a known user keeps their server
// while the agent gives no answer, a newcomer is refused; a server in maintenance is not
// used. The runtime client reads and clears the table of the same haproxy.
func TestRoutingFastPath(t *testing.T) {
	for _, bin := range haproxyBins(t) {
		t.Run(binName(bin), func(t *testing.T) {
			for _, fc := range fastPathCases {
				t.Run(fc.name, func(t *testing.T) { testFastPath(t, bin, fc) })
			}
		})
	}
}

func testFastPath(t *testing.T, bin string, fc fastPathCase) {
	c := validConfig()
	c.Mode, c.Key, c.TrackConnections = fc.mode, fc.key, fc.track
	c.FastPath, c.FastPathWindow = true, time.Minute
	r := startRig(t, bin, c, true, nil)
	rt := Runtime{Addr: r.sock, Tables: map[string]string{"web": "stickyseat_web"}}
	ctx := context.Background()
	long := strings.Repeat("x", 300)
	answers := map[string]seat{"alice": {server: "s2", status: "new"}, "carol": {status: "full"}, long: {server: "s2", status: "new"}}
	r.agent.setAnswer(func(args map[string]any) seat { return answers[fmt.Sprint(args["key"])] })

	// expect sends one request as user and checks the server that answered ("" for a
	// refusal) and how many times the agent was asked.
	expect := func(step, user, server string, asked int) {
		t.Helper()
		got, err := r.do("GET", "/", user, "")
		switch {
		case server == "" && err == nil && got.status < 500:
			t.Errorf("%s: %s got %+v; want a refusal", step, user, got)
		case server != "" && (err != nil || got.status != 200 || got.body != server):
			t.Errorf("%s: %s got %+v, %v; want 200 from %s", step, user, got, err, server)
		}
		wantHits := ""
		if server != "" {
			wantHits = server + "=1"
		}
		if hits := r.hits(); hits != wantHits {
			t.Errorf("%s: %s reached %q; want %q", step, user, hits, wantHits)
		}
		if calls := r.agent.takeCalls(); len(calls) != asked {
			t.Errorf("%s: %s asked the agent %d times; want %d", step, user, len(calls), asked)
		}
	}
	entries := func() []assign.TableEntry {
		t.Helper()
		snap, err := rt.Snapshot(ctx, "web")
		if err != nil {
			t.Fatalf("Snapshot: %v", err)
		}
		return snap.Entries
	}

	expect("first request", "alice", "s2", 1)
	expect("known user", "alice", "s2", 0)
	expect("known user again", "alice", "s2", 0)
	expect("full", "carol", "", 1)
	expect("full again: a refusal is never stored", "carol", "", 1)
	expect("key longer than the table keeps", long, "s2", 1)
	expect("long key again: always asks", long, "s2", 1)
	noKeyAsks := 1
	if fc.mode == ModeTCP {
		noKeyAsks = 0 // tcp mode asks only when the key is there
	}
	expect("no key", "", "", noKeyAsks)
	if got, want := entries(), []assign.TableEntry{{Key: "alice", Server: "s2"}}; !slices.Equal(got, want) {
		t.Errorf("Snapshot entries = %+v; want %+v", got, want)
	}

	// Forgotten: the next request asks, and the agent's new answer is what is stored.
	if err := rt.Forget(ctx, "web", "alice"); err != nil {
		t.Fatalf("Forget(alice): %v", err)
	}
	if err := rt.Forget(ctx, "web", "nobody"); err != nil {
		t.Errorf("Forget(nobody) = %v; want nil", err)
	}
	answers["alice"] = seat{server: "s1", status: "moved"}
	expect("forgotten", "alice", "s1", 1)
	expect("moved user known again", "alice", "s1", 0)

	// No answer from the agent: the known user keeps their server, a newcomer is refused.
	r.agent.setAnswer(always(seat{}))
	expect("agent silent, known user", "alice", "s1", 0)
	expect("agent silent, newcomer", "dave", "", 1)

	// A server in maintenance is not used, and the snapshot says it is down.
	if out, err := rt.Command(ctx, "set server stickyseat_web/s1 state maint"); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("set server state maint: %q, %v", out, err)
	}
	expect("server in maintenance", "alice", "", 0)
	snap, err := rt.Snapshot(ctx, "web")
	if err != nil || !snap.Health || !slices.Equal(snap.Down, []string{"s1"}) {
		t.Errorf("Snapshot with s1 in maintenance = %+v, %v; want health with s1 down", snap, err)
	}
}

// TestRoutingFastPathExpiry: an entry lives the window after the user's last request, and
// each request routed by it refreshes it.
func TestRoutingFastPathExpiry(t *testing.T) {
	const window = 1500 * time.Millisecond
	for _, bin := range haproxyBins(t) {
		t.Run(binName(bin), func(t *testing.T) {
			c := validConfig()
			c.Mode, c.FastPath, c.FastPathWindow = ModeHTTP, true, window
			r := startRig(t, bin, c, true, nil)
			r.agent.setAnswer(always(seat{server: "s1", status: "hit"}))
			asked := func() int {
				t.Helper()
				got, err := r.do("GET", "/", "alice", "")
				if err != nil || got.body != "s1" {
					t.Fatalf("GET as alice = %+v, %v; want s1", got, err)
				}
				return len(r.agent.takeCalls())
			}
			if n := asked(); n != 1 {
				t.Fatalf("first request asked %d times; want 1", n)
			}
			// Requests closer together than the window keep the entry alive well past it.
			start := time.Now()
			var last time.Time // before the last request: its refresh came later
			for time.Since(start) < 2*window {
				last = time.Now()
				if n := asked(); n != 0 {
					t.Fatalf("request %s after the first asked the agent; want the fast path", time.Since(start))
				}
				time.Sleep(window / 5)
			}
			// Then idle: the entry goes within the window (plus HAProxy's expiry task), and
			// the next request asks.
			rt := Runtime{Addr: r.sock, Tables: map[string]string{"web": "stickyseat_web"}}
			for {
				snap, err := rt.Snapshot(context.Background(), "web")
				if err != nil {
					t.Fatal(err)
				}
				if len(snap.Entries) == 0 {
					break
				}
				if time.Since(last) > window+2*time.Second {
					t.Fatalf("entry still there %s after the last request: %+v; want it gone after %s", time.Since(last), snap.Entries, window)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if idle := time.Since(last); idle < window {
				t.Errorf("entry gone %s after the last request; want the window %s", idle, window)
			}
			if n := asked(); n != 1 {
				t.Errorf("request after the entry expired asked %d times; want 1", n)
			}
		})
	}
}

// TestRuntimeOddKeys: keys with the characters HAProxy escapes in `show table` or the
// runtime API splits on come back exactly from Snapshot, and Forget removes them.
func TestRuntimeOddKeys(t *testing.T) {
	keys := []string{`a b`, `a=b`, `a\b`, `a;b`, `<<`, `a\ b`, "caf\u00e9", `x\x41`}
	for _, bin := range haproxyBins(t) {
		t.Run(binName(bin), func(t *testing.T) {
			c := validConfig()
			c.Mode, c.FastPath, c.FastPathWindow = ModeHTTP, true, time.Minute
			r := startRig(t, bin, c, true, nil)
			r.agent.setAnswer(always(seat{server: "s1", status: "new"}))
			rt := Runtime{Addr: r.sock, Tables: map[string]string{"web": "stickyseat_web"}}
			for _, k := range keys {
				if got, err := r.do("GET", "/", k, ""); err != nil || got.body != "s1" {
					t.Fatalf("GET as %q = %+v, %v; want s1", k, got, err)
				}
			}
			snap, err := rt.Snapshot(context.Background(), "web")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range snap.Entries {
				got = append(got, e.Key)
			}
			if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(keys))) {
				t.Errorf("Snapshot keys = %q; want %q", got, keys)
			}
			for _, k := range keys {
				if err := rt.Forget(context.Background(), "web", k); err != nil {
					t.Errorf("Forget(%q): %v", k, err)
				}
			}
			if snap, err := rt.Snapshot(context.Background(), "web"); err != nil || len(snap.Entries) != 0 {
				t.Errorf("Snapshot after forgetting every key = %+v, %v; want no entries", snap.Entries, err)
			}
		})
	}
}
