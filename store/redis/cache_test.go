package redis

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/store"
)

func TestHitCacheBounds(t *testing.T) {
	t0 := testStart
	tests := []struct {
		name    string
		max     int
		puts    int           // entries u0, u1, ... refreshed at t0, t0+1ns, ...
		idle    time.Duration // of every entry
		touchAt time.Duration // after t0, one get of an unknown key
		wantLen int
		wantU0  bool // u0 still answered at t0+touchAt
	}{
		{"below the cap", 10, 5, time.Minute, 0, 5, true},
		{"cap evicts the oldest", 3, 5, time.Minute, 0, 3, false},
		{"access sweeps expired entries of other keys", 100, 5, time.Second, time.Second + 10, 0, false},
		{"sweep is bounded per access", 100, sweepLimit + 5, time.Second, time.Second + 100, 5, false},
		{"live entries stay", 100, 5, time.Second, time.Second - 1, 5, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newHitCache(tt.max)
			for i := range tt.puts {
				c.put("u"+strconv.Itoa(i), "s1", t0.Add(time.Duration(i)), tt.idle)
			}
			c.get("unknown", t0.Add(tt.touchAt))
			if got := c.len(); got != tt.wantLen {
				t.Errorf("len after %d puts and one get = %d; want %d", tt.puts, got, tt.wantLen)
			}
			if _, got := c.get("u0", t0.Add(tt.touchAt)); got != tt.wantU0 {
				t.Errorf("get(u0) found = %v; want %v", got, tt.wantU0)
			}
		})
	}
}

func TestHitCacheEntry(t *testing.T) {
	c := newHitCache(10)
	c.put("u", "s1", testStart, time.Second)
	c.put("u", "s2", testStart.Add(time.Millisecond), time.Second) // refreshed elsewhere
	c.put("u", "s3", testStart, time.Second)                       // an older call finishing late
	tests := []struct {
		at         time.Duration
		wantServer string
		wantFound  bool
	}{
		{0, "s2", true},
		{time.Second, "s2", true},
		{time.Second + time.Millisecond, "", false}, // expired exactly idle after the refresh
	}
	for _, tt := range tests {
		e, found := c.get("u", testStart.Add(tt.at))
		if found != tt.wantFound || e.server != tt.wantServer {
			t.Errorf("get(u) at +%v = %q, %v; want %q, %v", tt.at, e.server, found, tt.wantServer, tt.wantFound)
		}
	}
	c.put("v", "s1", testStart, time.Hour)
	c.remove("v")
	if _, found := c.get("v", testStart); found {
		t.Errorf("get(v) after remove found an entry")
	}
}

func TestErrorLogRateLimited(t *testing.T) {
	var buf bytes.Buffer
	s := New(nil, Options{Logger: zerolog.New(&buf)})
	for range 5 {
		s.logError(errors.New("boom"))
	}
	if got := strings.Count(buf.String(), "\n"); got != 1 {
		t.Fatalf("5 errors within %v logged %d lines; want 1:\n%s", errorLogInterval, got, buf.String())
	}
	s.lastLog = s.lastLog.Add(-errorLogInterval) // the interval has passed
	s.logError(errors.New("boom"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], `"suppressed":4`) || !strings.Contains(lines[1], `"component":"redis-store"`) {
		t.Errorf("log after the interval = %q; want a second line with suppressed 4 and the component", lines)
	}
}

func TestHitCache(t *testing.T) {
	srv := startRedis(t)
	const n = 50
	tests := []struct {
		name           string
		refresh        time.Duration
		wantRoundTrips uint64
	}{
		{"default interval", 0, 1},
		{"disabled", -1, n},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			s := New(srv.Client(), Options{Clock: clock.c.Now, RefreshInterval: tt.refresh})
			mustAssign(t, s, request("warm-up", "w")) // loads the script
			req := request(t.Name(), "u1")
			before := s.RoundTrips()
			first := mustAssign(t, s, req)
			for range n - 1 {
				clock.c.Advance(DefaultRefreshInterval / (2 * n)) // all within the interval
				if got, want := mustAssign(t, s, req), (store.Result{Outcome: store.OutcomeHit, Server: first.Server}); got != want {
					t.Fatalf("Assign = %+v; want %+v", got, want)
				}
			}
			if got := s.RoundTrips() - before; got != tt.wantRoundTrips {
				t.Errorf("%d calls within the refresh interval: %d round trips; want %d", n, got, tt.wantRoundTrips)
			}
			if got, want := s.CacheHits(), n-tt.wantRoundTrips; got != want {
				t.Errorf("CacheHits() = %d; want %d", got, want)
			}
		})
	}
}

// TestHitCacheGoesBackToRedis checks when a cached user is sent to Redis again.
func TestHitCacheGoesBackToRedis(t *testing.T) {
	srv := startRedis(t)
	tests := []struct {
		name           string
		after          time.Duration
		idle           time.Duration
		servers        []store.Server
		wantRoundTrips uint64
	}{
		{"within interval", DefaultRefreshInterval - 1, time.Hour, nil, 0},
		{"interval over", DefaultRefreshInterval, time.Hour, nil, 1},
		{"capped at half the idle time", 500 * time.Millisecond, time.Second, nil, 1},
		// Two: the script names the unlisted server, whose key the second call declares.
		{"server no longer listed", 0, time.Hour, []store.Server{{Name: "s3", Quota: 1, Accepting: true}}, 2},
		{"server draining: still cached", 0, time.Hour, []store.Server{{Name: "s1", Quota: 2}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			s := New(srv.Client(), Options{Clock: clock.c.Now})
			mustAssign(t, s, request("warm-up", "w")) // loads the script
			req := request(t.Name(), "u1")
			req.Idle = tt.idle
			mustAssign(t, s, req)
			clock.c.Advance(tt.after)
			if tt.servers != nil {
				req.Servers = tt.servers
			}
			before := s.RoundTrips()
			mustAssign(t, s, req)
			if got := s.RoundTrips() - before; got != tt.wantRoundTrips {
				t.Errorf("%d round trips; want %d", got, tt.wantRoundTrips)
			}
		})
	}
}
