package assign_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/store"
	"github.com/stickyseat/stickyseat/store/memory"
	"github.com/stickyseat/stickyseat/store/storetest"
)

// fakeClock is a clock the test moves by hand, so expiry is exact.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const idle = time.Hour

func pool(servers ...assign.Server) assign.Pool {
	return assign.Pool{Name: "web", Servers: servers, IdleTimeout: idle}
}

func up(name string, quota int) assign.Server {
	return assign.Server{Name: name, Quota: quota, State: assign.StateUp}
}

// step is one request, the time that passes before it, and the decision it must get.
type step struct {
	advance    time.Duration
	key        string
	wantStatus assign.Status
	wantServer string
	reload     *assign.Pool // when set, reload this pool before the request
}

func TestPolicy(t *testing.T) {
	blog := pool(up("s1", 2), up("s2", 2), up("s3", 2))
	tests := []struct {
		name  string
		pool  assign.Pool
		steps []step
	}{
		{"new users spread, ties in configured order, then full", blog, []step{
			{key: "u1", wantStatus: assign.StatusNew, wantServer: "s1"},
			{key: "u2", wantStatus: assign.StatusNew, wantServer: "s2"},
			{key: "u3", wantStatus: assign.StatusNew, wantServer: "s3"},
			{key: "u4", wantStatus: assign.StatusNew, wantServer: "s1"},
			{key: "u5", wantStatus: assign.StatusNew, wantServer: "s2"},
			{key: "u6", wantStatus: assign.StatusNew, wantServer: "s3"},
			{key: "u7", wantStatus: assign.StatusFull},
			{key: "u1", wantStatus: assign.StatusHit, wantServer: "s1"},
		}},
		{"per-server quotas fill by used/quota", pool(up("s1", 4), up("s2", 2), up("s3", 2)), []step{
			{key: "a", wantStatus: assign.StatusNew, wantServer: "s1"}, // 0/4 0/2 0/2: tie, order
			{key: "b", wantStatus: assign.StatusNew, wantServer: "s2"}, // 1/4 < 0/2? no: 0/2 wins
			{key: "c", wantStatus: assign.StatusNew, wantServer: "s3"},
			{key: "d", wantStatus: assign.StatusNew, wantServer: "s1"}, // 1/4 < 1/2
			{key: "e", wantStatus: assign.StatusNew, wantServer: "s1"}, // 2/4 = 1/2: tie, order
			{key: "f", wantStatus: assign.StatusNew, wantServer: "s2"},
			{key: "g", wantStatus: assign.StatusNew, wantServer: "s3"},
			{key: "h", wantStatus: assign.StatusNew, wantServer: "s1"},
			{key: "i", wantStatus: assign.StatusFull},
		}},
		{"expiry exactly at the idle timeout", pool(up("s1", 1)), []step{
			{key: "old", wantStatus: assign.StatusNew, wantServer: "s1"},
			{advance: idle - time.Nanosecond, key: "late", wantStatus: assign.StatusFull},
			{advance: time.Nanosecond, key: "late", wantStatus: assign.StatusNew, wantServer: "s1"},
			{key: "old", wantStatus: assign.StatusFull},
		}},
		{"a hit refreshes the seat", pool(up("s1", 1)), []step{
			{key: "u", wantStatus: assign.StatusNew, wantServer: "s1"},
			{advance: idle - time.Second, key: "u", wantStatus: assign.StatusHit, wantServer: "s1"},
			{advance: idle - time.Second, key: "other", wantStatus: assign.StatusFull},
			{advance: time.Second, key: "other", wantStatus: assign.StatusNew, wantServer: "s1"},
		}},
		{"removed server: its users are moved", pool(up("s1", 1), up("s2", 1)), []step{
			{key: "u1", wantStatus: assign.StatusNew, wantServer: "s1"},
			{key: "u2", wantStatus: assign.StatusNew, wantServer: "s2"},
			{reload: ptr(pool(up("s2", 1), up("s3", 1))), key: "u1", wantStatus: assign.StatusMoved, wantServer: "s3"},
			{key: "u2", wantStatus: assign.StatusHit, wantServer: "s2"},
		}},
		{"draining server keeps its users, takes no one new", pool(up("s1", 2), up("s2", 2)), []step{
			{key: "u1", wantStatus: assign.StatusNew, wantServer: "s1"},
			{reload: ptr(pool(assign.Server{Name: "s1", Quota: 2, State: assign.StateDrain}, up("s2", 2))), key: "u1", wantStatus: assign.StatusHit, wantServer: "s1"},
			{key: "u2", wantStatus: assign.StatusNew, wantServer: "s2"},
			{key: "u3", wantStatus: assign.StatusNew, wantServer: "s2"},
			{key: "u4", wantStatus: assign.StatusFull},
		}},
		{"down server: its users move", pool(up("s1", 2), up("s2", 2)), []step{
			{key: "u1", wantStatus: assign.StatusNew, wantServer: "s1"},
			{reload: ptr(pool(assign.Server{Name: "s1", Quota: 2, State: assign.StateDown}, up("s2", 2))), key: "u1", wantStatus: assign.StatusMoved, wantServer: "s2"},
		}},
		{"every server down: full", pool(up("s1", 2)), []step{
			{key: "u1", wantStatus: assign.StatusNew, wantServer: "s1"},
			{reload: ptr(pool(assign.Server{Name: "s1", Quota: 2, State: assign.StateDown})), key: "u1", wantStatus: assign.StatusFull},
		}},
		{"keys longer than MaxKeyLen are one user", pool(up("s1", 1), up("s2", 1)), []step{
			{key: strings.Repeat("k", 1000), wantStatus: assign.StatusNew, wantServer: "s1"},
			{key: strings.Repeat("k", 1000), wantStatus: assign.StatusHit, wantServer: "s1"},
			{key: strings.Repeat("k", 999) + "j", wantStatus: assign.StatusNew, wantServer: "s2"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			a, err := assign.New(assign.Config{Pools: []assign.Pool{tt.pool}}, memory.New(memory.Options{Clock: clock.Now}), assign.Options{Clock: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				if s.reload != nil {
					if err := a.Reload(assign.Config{Pools: []assign.Pool{*s.reload}}); err != nil {
						t.Fatalf("step %d: Reload: %v", i, err)
					}
				}
				d := a.Decide(context.Background(), assign.Request{Key: s.key})
				if d.Status != s.wantStatus || d.Server != s.wantServer {
					t.Errorf("step %d: Decide(%.20q) = %s %q; want %s %q (err %v)", i, s.key, d.Status, d.Server, s.wantStatus, s.wantServer, d.Err)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestInvalidRequests(t *testing.T) {
	two := assign.Config{Pools: []assign.Pool{pool(up("s1", 1)), {Name: "api", Servers: []assign.Server{up("a1", 1)}, IdleTimeout: idle}}}
	one := assign.Config{Pools: []assign.Pool{pool(up("s1", 1))}}
	tests := []struct {
		name    string
		cfg     assign.Config
		req     assign.Request
		wantErr error
	}{
		{"empty key", one, assign.Request{}, assign.ErrNoKey},
		{"unknown pool", one, assign.Request{Pool: "nope", Key: "u"}, assign.ErrUnknownPool},
		{"no pool named with two configured", two, assign.Request{Key: "u"}, assign.ErrNoPool},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := assign.New(tt.cfg, memory.New(memory.Options{}), assign.Options{})
			if err != nil {
				t.Fatal(err)
			}
			d := a.Decide(context.Background(), tt.req)
			if d.Status != assign.StatusInvalid || !errors.Is(d.Err, tt.wantErr) || d.Server != "" {
				t.Errorf("Decide(%+v) = %s %q, %v; want invalid, %v", tt.req, d.Status, d.Server, d.Err, tt.wantErr)
			}
		})
	}
	a, err := assign.New(two, memory.New(memory.Options{}), assign.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := a.Decide(context.Background(), assign.Request{Pool: "api", Key: "u"}); d.Status != assign.StatusNew || d.Server != "a1" {
		t.Errorf("Decide in pool api = %s %q; want new a1", d.Status, d.Server)
	}
}

// failingStore fails every call, as a store whose backend is down.
type failingStore struct{}

func (failingStore) NeverBlocks() bool { return false }

func (failingStore) Assign(context.Context, store.Request) (store.Result, error) {
	return store.Result{}, errors.New("connection refused")
}

func TestStoreErrorIsStatusError(t *testing.T) {
	a, err := assign.New(assign.Config{Pools: []assign.Pool{pool(up("s1", 1))}}, failingStore{}, assign.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := a.Decide(context.Background(), assign.Request{Key: "u"})
	if d.Status != assign.StatusError || d.Server != "" || d.Err == nil {
		t.Errorf("Decide with a failing store = %s %q, %v; want error, no server, an error", d.Status, d.Server, d.Err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  assign.Config
		want string
	}{
		{"no pools", assign.Config{}, "no pools configured"},
		{"no servers", assign.Config{Pools: []assign.Pool{{Name: "web", IdleTimeout: idle}}}, `pool "web" has no servers`},
		{"duplicate server", assign.Config{Pools: []assign.Pool{pool(up("s1", 1), up("s1", 2))}}, `pool "web": duplicate server "s1"`},
		{"zero quota", assign.Config{Pools: []assign.Pool{pool(up("s1", 0))}}, `pool "web": server "s1": quota must be positive, got 0`},
		{"zero idle", assign.Config{Pools: []assign.Pool{{Name: "web", Servers: []assign.Server{up("s1", 1)}}}}, `pool "web": idle timeout must be positive, got 0s`},
		{"duplicate pool", assign.Config{Pools: []assign.Pool{pool(up("s1", 1)), pool(up("s2", 1))}}, `duplicate pool "web"`},
		{"quotas above max seats", assign.Config{MaxSeats: 10, Pools: []assign.Pool{pool(up("s1", 6), up("s2", 5))}}, `pool "web": quotas add up to 11 seats, above the limit of 10 seats per pool (raise --max-seats)`},
		{"pool name with a space", assign.Config{Pools: []assign.Pool{{Name: "web app", IdleTimeout: idle, Servers: []assign.Server{up("s1", 1)}}}}, `pool name "web app": character ' ' not allowed: use letters, digits, '_', '-' and '.'`},
		{"server name with a slash", assign.Config{Pools: []assign.Pool{pool(up("s/1", 1))}}, `pool "web": server name "s/1": character '/' not allowed: use letters, digits, '_', '-' and '.'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if err == nil || err.Error() != tt.want {
				t.Errorf("Validate() = %v; want %q", err, tt.want)
			}
		})
	}
}

func TestNormalizeKey(t *testing.T) {
	short := strings.Repeat("a", assign.MaxKeyLen)
	if got := assign.NormalizeKey(short); got != short {
		t.Errorf("NormalizeKey(%d bytes) changed the key", len(short))
	}
	long := short + "b"
	got := assign.NormalizeKey(long)
	if !strings.HasPrefix(got, "sha256:") || len(got) != 71 {
		t.Errorf("NormalizeKey(%d bytes) = %q; want sha256:<64 hex>", len(long), got)
	}
	if assign.NormalizeKey(short+"c") == got {
		t.Errorf("two different long keys hash to the same key")
	}
}

func TestHealth(t *testing.T) {
	down := func(servers ...string) assign.Request {
		r := assign.Request{Health: true}
		for _, s := range servers {
			r.Down = append(r.Down, assign.ServerRef{Pool: "web", Server: s})
		}
		return r
	}
	type hstep struct {
		advance    time.Duration
		key        string
		report     assign.Request // Health/Down; Key set from key
		wantStatus assign.Status
		wantServer string
	}
	tests := []struct {
		name   string
		policy assign.DownPolicy
		grace  time.Duration
		steps  []hstep
	}{
		{"down server: no new seats at once, users kept for the grace, then moved", assign.DownMove, 10 * time.Second, []hstep{
			{key: "u1", report: down(), wantStatus: assign.StatusNew, wantServer: "s1"},
			{key: "u2", report: down("s1"), wantStatus: assign.StatusNew, wantServer: "s2"},
			{key: "u3", report: down("s1"), wantStatus: assign.StatusNew, wantServer: "s2"},
			{advance: 10*time.Second - time.Nanosecond, key: "u1", report: down("s1"), wantStatus: assign.StatusHit, wantServer: "s1"},
			{advance: time.Nanosecond, key: "u1", report: down("s1"), wantStatus: assign.StatusMoved, wantServer: "s2"},
			{key: "u1", report: down(), wantStatus: assign.StatusHit, wantServer: "s2"},
		}},
		{"a blip shorter than the grace loses no one", assign.DownMove, 10 * time.Second, []hstep{
			{key: "u1", report: down(), wantStatus: assign.StatusNew, wantServer: "s1"},
			{advance: time.Second, key: "x", report: down("s1"), wantStatus: assign.StatusNew, wantServer: "s2"},
			{advance: 5 * time.Second, key: "u1", report: down(), wantStatus: assign.StatusHit, wantServer: "s1"},
			{advance: 8 * time.Second, key: "u1", report: down("s1"), wantStatus: assign.StatusHit, wantServer: "s1"},
		}},
		{"after the grace, no room elsewhere: full", assign.DownMove, time.Second, []hstep{
			{key: "u1", report: down(), wantStatus: assign.StatusNew, wantServer: "s1"},
			{key: "u2", report: down("s1"), wantStatus: assign.StatusNew, wantServer: "s2"},
			{advance: time.Second, key: "u1", report: assign.Request{Health: true, Down: []assign.ServerRef{{Pool: "web", Server: "s1"}}}, wantStatus: assign.StatusFull},
		}},
		{"keep policy: users wait for their server", assign.DownKeep, time.Second, []hstep{
			{key: "u1", report: down(), wantStatus: assign.StatusNew, wantServer: "s1"},
			{advance: time.Hour / 2, key: "u1", report: down("s1"), wantStatus: assign.StatusHit, wantServer: "s1"},
			{key: "u2", report: down("s1"), wantStatus: assign.StatusNew, wantServer: "s2"},
			{key: "u3", report: down("s1"), wantStatus: assign.StatusFull},
			{key: "u1", report: down(), wantStatus: assign.StatusHit, wantServer: "s1"},
			{key: "u3", report: down(), wantStatus: assign.StatusFull}, // s1 1/1, s2 1/1
		}},
		{"no report keeps the remembered state", assign.DownMove, time.Second, []hstep{
			{key: "u1", report: down("s1"), wantStatus: assign.StatusNew, wantServer: "s2"},
			{key: "u2", report: assign.Request{}, wantStatus: assign.StatusFull},
			{key: "u2", report: down(), wantStatus: assign.StatusNew, wantServer: "s1"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			p := assign.Pool{Name: "web", Servers: []assign.Server{up("s1", 1), up("s2", 1)}, IdleTimeout: idle, DownGrace: tt.grace, DownPolicy: tt.policy}
			if tt.name == "down server: no new seats at once, users kept for the grace, then moved" {
				p.Servers = []assign.Server{up("s1", 1), up("s2", 3)}
			}
			a, err := assign.New(assign.Config{Pools: []assign.Pool{p}}, memory.New(memory.Options{Clock: clock.Now}), assign.Options{Clock: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				req := s.report
				req.Key = s.key
				d := a.Decide(context.Background(), req)
				if d.Status != s.wantStatus || d.Server != s.wantServer {
					t.Errorf("step %d: Decide(%q, down %v) = %s %q; want %s %q (err %v)", i, s.key, req.Down, d.Status, d.Server, s.wantStatus, s.wantServer, d.Err)
				}
			}
		})
	}
}

// waitingStore is a store that does not promise never to block.
type waitingStore struct{ store.Assigner }

func (waitingStore) NeverBlocks() bool { return false }

func TestNeverBlocks(t *testing.T) {
	cfg := assign.Config{Pools: []assign.Pool{{Name: "web", IdleTimeout: time.Hour, Servers: []assign.Server{up("s1", 1)}}}}
	mem := memory.New(memory.Options{})
	for _, tt := range []struct {
		name  string
		store store.Assigner
		want  bool
	}{{"memory store", mem, true}, {"a store that may wait", waitingStore{mem}, false}} {
		a, err := assign.New(cfg, tt.store, assign.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := a.NeverBlocks(); got != tt.want {
			t.Errorf("%s: NeverBlocks() = %v; want %v", tt.name, got, tt.want)
		}
	}
}

// TestConfigClone: a clone carries every field and shares nothing a run-time change edits.
func TestConfigClone(t *testing.T) {
	orig := assign.Config{MaxSeats: 10, Pools: []assign.Pool{
		{Name: "web", IdleTimeout: idle, DownGrace: time.Second, DownPolicy: assign.DownKeep, WhenFull: assign.WhenFullQueue, QueueTimeout: time.Second, QueueMax: 3, Servers: []assign.Server{up("s1", 4), {Name: "s2", Quota: 2, State: assign.StateDrain}}},
	}}
	// Every field set: a field Clone dropped would show as a difference below.
	for _, v := range []reflect.Value{reflect.ValueOf(orig), reflect.ValueOf(orig.Pools[0])} {
		for i := 0; i < v.NumField(); i++ {
			if v.Field(i).IsZero() {
				t.Fatalf("test config leaves %s.%s zero: set it", v.Type().Name(), v.Type().Field(i).Name)
			}
		}
	}
	c := orig.Clone()
	if !reflect.DeepEqual(c, orig) {
		t.Fatalf("Clone() = %+v; want %+v", c, orig)
	}
	c.Pools[0].Servers[0].Quota = 99
	c.Pools[0].Name = "api"
	if orig.Pools[0].Servers[0].Quota != 4 || orig.Pools[0].Name != "web" {
		t.Errorf("editing the clone changed the original: %+v", orig)
	}
}

func TestValidName(t *testing.T) {
	for _, name := range []string{"web", "api.v2", "soap_legacy", "be-1", "S9"} {
		if err := assign.ValidName(name); err != nil {
			t.Errorf("ValidName(%q) = %v; want nil", name, err)
		}
	}
	for name, want := range map[string]string{
		"":        "must not be empty",
		"web app": `character ' ' not allowed: use letters, digits, '_', '-' and '.'`,
		"s1#main": `character '#' not allowed: use letters, digits, '_', '-' and '.'`,
		"web/s1":  `character '/' not allowed: use letters, digits, '_', '-' and '.'`,
		"café":    `character 'é' not allowed: use letters, digits, '_', '-' and '.'`,
	} {
		if err := assign.ValidName(name); err == nil || err.Error() != want {
			t.Errorf("ValidName(%q) = %v; want %q", name, err, want)
		}
	}
}

// TestConfigErrorPlaces: Validate says which pool, server and field a problem is in, so a
// loader can point at the line that wrote it.
func TestConfigErrorPlaces(t *testing.T) {
	web := pool(up("s1", 6), up("s2", 5))
	tests := []struct {
		name string
		cfg  assign.Config
		want assign.ConfigError // Err left out
	}{
		{"duplicate pool", assign.Config{Pools: []assign.Pool{web, {Name: "api", IdleTimeout: idle, Servers: []assign.Server{up("a1", 1)}}, web}}, assign.ConfigError{Pool: 2, Server: -1, Field: "Name", First: 0}},
		{"duplicate server", assign.Config{Pools: []assign.Pool{pool(up("s1", 1), up("s2", 1), up("s1", 1))}}, assign.ConfigError{Pool: 0, Server: 2, Field: "Name", First: 0}},
		{"zero quota", assign.Config{Pools: []assign.Pool{web, {Name: "api", IdleTimeout: idle, Servers: []assign.Server{up("a1", 1), up("a2", 0)}}}}, assign.ConfigError{Pool: 1, Server: 1, Field: "Quota", First: -1}},
		{"quotas above max seats", assign.Config{MaxSeats: 10, Pools: []assign.Pool{web}}, assign.ConfigError{Pool: 0, Server: -1, First: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *assign.ConfigError
			if err := tt.cfg.Validate(); !errors.As(err, &got) {
				t.Fatalf("Validate() = %v; want a *ConfigError", err)
			}
			if g := (assign.ConfigError{Pool: got.Pool, Server: got.Server, Field: got.Field, First: got.First}); g != tt.want {
				t.Errorf("Validate() placed %+v; want %+v", g, tt.want)
			}
		})
	}
}

// TestWhenFullQueue: a pool whose line is on answers queued with the place, and seats the
// head first once a seat frees; the default pool answers full as before.
func TestWhenFullQueue(t *testing.T) {
	clock := storetest.NewClock(time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC))
	line := assign.Pool{Name: "web", IdleTimeout: idle, Servers: []assign.Server{up("s1", 1)},
		WhenFull: assign.WhenFullQueue, QueueTimeout: 2 * idle, QueueMax: 10}
	a, err := assign.New(assign.Config{Pools: []assign.Pool{line}}, memory.New(memory.Options{Clock: clock.Now}), assign.Options{Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	decide := func(key string) assign.Decision { return a.Decide(ctx, assign.Request{Key: key}) }
	if d := decide("u1"); d.Status != assign.StatusNew {
		t.Fatalf("Decide(u1) = %+v; want new", d)
	}
	for i, key := range []string{"u2", "u3"} {
		if d := decide(key); d.Status != assign.StatusQueued || d.Position != i+1 || d.Server != "" {
			t.Fatalf("Decide(%s) = %+v; want queued at %d, no server", key, d, i+1)
		}
	}
	clock.Advance(idle)
	if d := decide("u3"); d.Status != assign.StatusQueued || d.Position != 2 {
		t.Errorf("Decide(u3) after a seat freed = %+v; want still queued at 2 (the seat is u2's)", d)
	}
	if d := decide("u2"); d.Status != assign.StatusNew || d.Server != "s1" || d.Waited != idle {
		t.Errorf("Decide(u2) = %+v; want new on s1 after waiting %v", d, idle)
	}

	line.WhenFull = assign.WhenFullReject
	if err := a.Reload(assign.Config{Pools: []assign.Pool{line}}); err != nil {
		t.Fatal(err)
	}
	if d := decide("u4"); d.Status != assign.StatusFull || d.Position != 0 {
		t.Errorf("Decide(u4) with the line off = %+v; want full", d)
	}
}

func TestQueueConfigValidated(t *testing.T) {
	base := assign.Pool{Name: "web", IdleTimeout: idle, Servers: []assign.Server{up("s1", 1)}, WhenFull: assign.WhenFullQueue, QueueTimeout: time.Second, QueueMax: 1}
	for _, tt := range []struct {
		name string
		edit func(*assign.Pool)
		want string
	}{
		{"no timeout", func(p *assign.Pool) { p.QueueTimeout = 0 }, `pool "web": queue timeout must be positive, got 0s`},
		{"no room", func(p *assign.Pool) { p.QueueMax = 0 }, `pool "web": queue max must be positive, got 0`},
		{"unknown", func(p *assign.Pool) { p.WhenFull = 7 }, `pool "web": unknown when-full 7`},
	} {
		p := base
		tt.edit(&p)
		err := assign.Config{Pools: []assign.Pool{p}}.Validate()
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: Validate() = %v; want %q", tt.name, err, tt.want)
		}
	}
	if err := (assign.Config{Pools: []assign.Pool{base}}).Validate(); err != nil {
		t.Errorf("Validate(valid line) = %v", err)
	}
}
