package redis

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stickyseat/stickyseat/store"
	"github.com/stickyseat/stickyseat/store/storetest"
)

// testStart is where the tests' fake clocks begin.
var testStart = time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC)

// newClient returns a client for rawURL configured by ParseURL, closed in t.Cleanup.
func newClient(tb testing.TB, rawURL string) goredis.UniversalClient {
	tb.Helper()
	opts, err := ParseURL(rawURL)
	if err != nil {
		tb.Fatalf("ParseURL(%q): %v", rawURL, err)
	}
	c := goredis.NewUniversalClient(opts)
	tb.Cleanup(func() { c.Close() })
	return c
}

// fakeClock is a settable clock for Options.Clock.
type fakeClock struct{ c *storetest.Clock }

func newFakeClock() fakeClock { return fakeClock{storetest.NewClock(testStart)} }

// Contract suite sizes on Redis: the suite's default Concurrency size (64 × 10k requests)
// suits the in-process memory store; against a real redis-server under -race it takes
// minutes. STICKYSEAT_FULL_SUITE=1 runs the default size; TestAgentsShareSeats covers
// concurrency across agents on Redis at scale.
const fullSuiteEnv = "STICKYSEAT_FULL_SUITE"

func suiteOptions() []storetest.Option {
	if os.Getenv(fullSuiteEnv) == "1" {
		return nil
	}
	return []storetest.Option{storetest.WithConcurrency(16, 1_000, 10)}
}

// runContract runs the contract suite on stores sharing client, with and without hit cache.
func runContract(t *testing.T, client goredis.UniversalClient) {
	for _, tt := range []struct {
		name    string
		refresh time.Duration
	}{
		{"HitCache", 0},
		{"NoHitCache", -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, clock *storetest.Clock) store.Store {
				return New(client, Options{Clock: clock.Now, RefreshInterval: tt.refresh, Timeout: 5 * time.Second})
			}, suiteOptions()...)
		})
	}
}

func TestContract(t *testing.T) {
	srv := startRedis(t)
	runContract(t, newClient(t, srv.URL()))
}

func TestContractCluster(t *testing.T) {
	addrs := startCluster(t)
	runContract(t, newClient(t, "redis-cluster://"+strings.Join(addrs, ",")))
}

// request is a valid request in pool p with two servers of quota 2 and a long idle time.
func request(pool, key string) store.Request {
	return store.Request{Pool: pool, Key: key, Idle: time.Hour, Servers: []store.Server{
		{Name: "s1", Quota: 2, Accepting: true},
		{Name: "s2", Quota: 2, Accepting: true},
	}}
}

// mustAssign fails the test on an error.
func mustAssign(t *testing.T, s *Store, req store.Request) store.Result {
	t.Helper()
	got, err := s.Assign(context.Background(), req)
	if err != nil {
		t.Fatalf("Assign(%q, %q) error: %v", req.Pool, req.Key, err)
	}
	return got
}

func TestKeyLayout(t *testing.T) {
	srv := startRedis(t)
	rc := srv.Client()
	ctx := context.Background()
	tests := []struct {
		name       string
		prefix     string
		clock      bool
		wantPrefix string
		wantTTL    bool
	}{
		{"default prefix, Redis time", "", false, "stickyseat:", true},
		{"own prefix", "app1:", false, "app1:", true},
		{"test clock: no TTL", "clocked:", true, "clocked:", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{KeyPrefix: tt.prefix}
			if tt.clock {
				opts.Clock = newFakeClock().c.Now
			}
			s := New(srv.Client(), opts)
			mustAssign(t, s, request("web", "10.0.0.1"))

			userKey := tt.wantPrefix + "{web}:user:10.0.0.1"
			srvKey := tt.wantPrefix + "{web}:srv:s1"
			if got, err := rc.Get(ctx, userKey).Result(); err != nil || got != "s1" {
				t.Errorf("GET %s = %q, %v; want %q", userKey, got, err, "s1")
			}
			if got, err := rc.ZRange(ctx, srvKey, 0, -1).Result(); err != nil || len(got) != 1 || got[0] != "10.0.0.1" {
				t.Errorf("ZRANGE %s 0 -1 = %q, %v; want [10.0.0.1]", srvKey, got, err)
			}
			for _, key := range []string{userKey, srvKey} {
				ttl, err := rc.PTTL(ctx, key).Result()
				if err != nil {
					t.Fatalf("PTTL %s: %v", key, err)
				}
				// Idle is an hour; the TTL is idle+1ms, minus the time since.
				if got := ttl > 59*time.Minute && ttl <= time.Hour+time.Millisecond; got != tt.wantTTL {
					t.Errorf("PTTL %s = %v; want about an hour: %v", key, ttl, tt.wantTTL)
				}
			}
		})
	}
}

// TestHitRefreshesTTLs checks that a hit, which leaves the user key's value as it is, still
// pushes both keys' TTLs back to idle from now.
func TestHitRefreshesTTLs(t *testing.T) {
	srv := startRedis(t)
	rc := srv.Client()
	ctx := context.Background()
	s := New(srv.Client(), Options{RefreshInterval: -1}) // every decision runs the script
	if got := mustAssign(t, s, request("web", "10.0.0.1")); got.Outcome != store.OutcomeNew {
		t.Fatalf("first Assign = %+v; want new", got)
	}
	userKey, srvKey := "stickyseat:{web}:user:10.0.0.1", "stickyseat:{web}:srv:s1"
	for _, key := range []string{userKey, srvKey} {
		if err := rc.PExpire(ctx, key, 10*time.Second).Err(); err != nil {
			t.Fatalf("PEXPIRE %s: %v", key, err)
		}
	}
	if got := mustAssign(t, s, request("web", "10.0.0.1")); got.Outcome != store.OutcomeHit || got.Server != "s1" {
		t.Fatalf("second Assign = %+v; want a hit on s1", got)
	}
	if got, err := rc.Get(ctx, userKey).Result(); err != nil || got != "s1" {
		t.Errorf("GET %s = %q, %v; want %q", userKey, got, err, "s1")
	}
	// The score is Redis's TIME in whole microseconds, written without rounding.
	score, err := rc.ZScore(ctx, srvKey, "10.0.0.1").Result()
	if now := float64(time.Now().UnixMicro()); err != nil || score != float64(int64(score)) || score < now-5e6 || score > now+5e6 {
		t.Errorf("ZSCORE %s 10.0.0.1 = %f, %v; want whole microseconds near %f", srvKey, score, err, now)
	}
	for _, key := range []string{userKey, srvKey} {
		ttl, err := rc.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatalf("PTTL %s: %v", key, err)
		}
		if ttl < 59*time.Minute || ttl > time.Hour+time.Millisecond {
			t.Errorf("PTTL %s after a hit = %v; want about an hour (idle + 1ms)", key, ttl)
		}
	}
}

// TestScoresAreMicroseconds checks the score written under a test clock, so that a seat's
// time can be read with redis-cli, and that Lua did not round it.
func TestScoresAreMicroseconds(t *testing.T) {
	srv := startRedis(t)
	clock := newFakeClock()
	clock.c.Advance(123456 * time.Microsecond)
	s := New(srv.Client(), Options{Clock: clock.c.Now})
	mustAssign(t, s, request("p", "u"))
	got, err := srv.Client().ZScore(context.Background(), "stickyseat:{p}:srv:s1", "u").Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := float64(clock.c.Now().UnixMicro()); got != want {
		t.Errorf("ZSCORE = %.0f; want %.0f", got, want)
	}
}

// TestGarbageCollectionBounded fills a server with seats, lets them expire and checks that
// each call removes at most gcLimit expired members of a set it touches, until none is left.
func TestGarbageCollectionBounded(t *testing.T) {
	srv := startRedis(t)
	rc := srv.Client()
	ctx := context.Background()
	clock := newFakeClock()
	s := New(rc, Options{Clock: clock.c.Now, RefreshInterval: -1})
	const seats = 3*gcLimit + 10
	req := func(key string) store.Request {
		return store.Request{Pool: "gc", Key: key, Idle: time.Minute,
			Servers: []store.Server{{Name: "s1", Quota: seats, Accepting: true}}}
	}
	for i := range seats {
		if got := mustAssign(t, s, req("old-"+strconv.Itoa(i))); got.Outcome != store.OutcomeNew {
			t.Fatalf("Assign(old-%d) = %+v; want new", i, got)
		}
	}
	clock.c.Advance(time.Minute)
	want := int64(seats)
	for i := 0; want > 1; i++ {
		mustAssign(t, s, req("new-"+strconv.Itoa(i)))
		// A new seat is added (+1) and at most gcLimit expired ones are removed.
		want = max(want+1-gcLimit, int64(i+1))
		got, err := rc.ZCard(ctx, "stickyseat:{gc}:srv:s1").Result()
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("after call %d: ZCARD = %d; want %d", i, got, want)
		}
		if got == int64(i+1) {
			break
		}
	}
}

// TestUnlistedServerSecondCall checks that releasing a seat on a server missing from the
// request costs exactly one more round trip (its key must be declared to the script).
func TestUnlistedServerSecondCall(t *testing.T) {
	srv := startRedis(t)
	s := New(srv.Client(), Options{RefreshInterval: -1})
	mustAssign(t, s, request("warm-up", "w")) // loads the script
	both := request("p", "u")
	only2 := both
	only2.Servers = both.Servers[1:]
	tests := []struct {
		req            store.Request
		want           store.Result
		wantRoundTrips uint64
	}{
		{both, store.Result{Outcome: store.OutcomeNew, Server: "s1"}, 1},
		{only2, store.Result{Outcome: store.OutcomeMoved, Server: "s2", Previous: "s1"}, 2},
		{only2, store.Result{Outcome: store.OutcomeHit, Server: "s2"}, 1},
		{both, store.Result{Outcome: store.OutcomeHit, Server: "s2"}, 1},
	}
	for i, tt := range tests {
		before := s.RoundTrips()
		got := mustAssign(t, s, tt.req)
		if got != tt.want {
			t.Errorf("step %d: Assign = %+v; want %+v", i, got, tt.want)
		}
		if rt := s.RoundTrips() - before; rt != tt.wantRoundTrips {
			t.Errorf("step %d: %d round trips; want %d", i, rt, tt.wantRoundTrips)
		}
	}
}

func TestInvalidRequestNoRoundTrip(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	s := New(client, Options{})
	_, err := s.Assign(context.Background(), store.Request{Pool: "p"})
	if !errors.Is(err, store.ErrInvalidRequest) {
		t.Errorf("Assign(empty key) error = %v; want %v", err, store.ErrInvalidRequest)
	}
	if got := s.RoundTrips(); got != 0 {
		t.Errorf("RoundTrips() = %d; want 0", got)
	}
}

func TestOpen(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	s, err := Open(ctx, srv.URL()+"/3", Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	mustAssign(t, s, request("p", "u"))
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	db3 := goredis.NewClient(&goredis.Options{Addr: srv.Addr(), DB: 3})
	defer db3.Close()
	if n, err := db3.Exists(ctx, "stickyseat:{p}:user:u").Result(); err != nil || n != 1 {
		t.Errorf("EXISTS in db 3 = %d, %v; want 1", n, err)
	}

	closed := startRedis(t)
	closed.Stop()
	if _, err := Open(ctx, closed.URL(), Options{}); err == nil || !strings.Contains(err.Error(), "redis ping "+closed.Addr()) {
		t.Errorf("Open(stopped server) error = %v; want one naming %s", err, closed.Addr())
	}
	if _, err := Open(ctx, "http://x", Options{}); !errors.Is(err, ErrInvalidURL) {
		t.Errorf("Open(http://x) error = %v; want %v", err, ErrInvalidURL)
	}
}
