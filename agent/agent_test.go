package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/agent/spop"
	"github.com/stickyseat/stickyseat/agent/spop/spoptest"
	"github.com/stickyseat/stickyseat/assign"
)

// fakeDecider answers from a table and records what it was asked.
type fakeDecider struct {
	mu    sync.Mutex
	asked []assign.Request
	// block, when set, holds decisions for key "slow" until closed.
	block chan struct{}
}

func (f *fakeDecider) Decide(ctx context.Context, req assign.Request) assign.Decision {
	f.mu.Lock()
	f.asked = append(f.asked, req)
	f.mu.Unlock()
	switch req.Key {
	case "":
		// Pools are known unless named "nope", as assign resolves a pool without a key.
		if req.Pool == "nope" {
			return assign.Decision{Status: assign.StatusInvalid, Err: assign.ErrUnknownPool}
		}
		return assign.Decision{Status: assign.StatusInvalid, Pool: req.Pool, Err: assign.ErrNoKey}
	case "boom":
		panic("decider exploded")
	case "boom-error":
		panic(errors.New("decider failed with an error value"))
	case "slow":
		<-f.block
		return assign.Decision{Status: assign.StatusNew, Server: "s-slow"}
	case "full":
		return assign.Decision{Status: assign.StatusFull}
	case "queued":
		return assign.Decision{Status: assign.StatusQueued, Position: 3, Wait: 1500 * time.Millisecond}
	case "queued-no-estimate":
		return assign.Decision{Status: assign.StatusQueued, Position: 12}
	case "broken":
		return assign.Decision{Status: assign.StatusError, Err: errors.New("store down")}
	}
	if len(req.Key) > 64 {
		return assign.Decision{Status: assign.StatusNew, Server: "srv-long"}
	}
	return assign.Decision{Status: assign.StatusNew, Server: "srv-" + req.Key + "-" + req.Pool}
}

func (f *fakeDecider) requests() []assign.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]assign.Request(nil), f.asked...)
}

// startAgent serves an agent on a random loopback port until the test ends.
func startAgent(t testing.TB, d Decider, opts Options) (*Agent, string, context.CancelFunc) {
	t.Helper()
	if tt, ok := t.(*testing.T); ok {
		// Fuzz targets may not log through the F that started the agent.
		opts.Logger = zerolog.New(zerolog.NewTestWriter(tt)).Level(zerolog.WarnLevel)
	}
	return serveAgent(t, d, opts, nil)
}

// serveAgent is startAgent with opts.Logger as given; setup, when set, sees the agent
// before it serves (to inject clocks).
func serveAgent(t testing.TB, d Decider, opts Options, setup func(*Agent)) (*Agent, string, context.CancelFunc) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := New(d, opts)
	if setup != nil {
		setup(a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v; want nil after cancel", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return within 10s of cancel")
		}
	})
	return a, ln.Addr().String(), cancel
}

// dial opens a client that has done the HELLO handshake.
func dial(t *testing.T, addr string) *spoptest.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := spoptest.NewClient(conn)
	t.Cleanup(func() { c.Close() })
	if _, err := c.Hello(false); err != nil {
		t.Fatalf("Hello: %v", err)
	}
	return c
}

func msg(args ...spop.KV) spop.Message { return spop.Message{Name: MessageName, Args: args} }

func arg(name string, v spop.Value) spop.KV { return spop.KV{Name: name, Value: v} }

func TestAnswers(t *testing.T) {
	d := &fakeDecider{}
	_, addr, _ := startAgent(t, d, Options{})
	c := dial(t, addr)
	tests := []struct {
		name       string
		msgs       []spop.Message
		wantStatus string
		wantServer string // "" means the server var must be absent
		wantKey    string
	}{
		{"string key", []spop.Message{msg(arg("key", spop.Str("alice")))}, "new", "srv-alice-", "alice"},
		{"key and pool", []spop.Message{msg(arg("key", spop.Str("bob")), arg("pool", spop.Str("web")))}, "new", "srv-bob-web", "bob"},
		{"ipv4 src", []spop.Message{msg(arg("key", spop.Addr(netip.MustParseAddr("127.0.0.11"))))}, "new", "srv-127.0.0.11-", "127.0.0.11"},
		{"ipv6 src", []spop.Message{msg(arg("key", spop.Addr(netip.MustParseAddr("2001:db8::1"))))}, "new", "srv-2001:db8::1-", "2001:db8::1"},
		{"binary key", []spop.Message{msg(arg("key", spop.Bin([]byte("bin\x00key"))))}, "new", "srv-bin\x00key-", "bin\x00key"},
		{"integer key", []spop.Message{msg(arg("key", spop.Int64(-42)))}, "new", "srv--42-", "-42"},
		{"uint key", []spop.Message{msg(arg("key", spop.Uint32(7)))}, "new", "srv-7-", "7"},
		{"missing key", []spop.Message{msg(arg("pool", spop.Str("web")))}, "invalid", "", ""},
		{"empty key", []spop.Message{msg(arg("key", spop.Str("")))}, "invalid", "", ""},
		{"full", []spop.Message{msg(arg("key", spop.Str("full")))}, "full", "", "full"},
		{"store error", []spop.Message{msg(arg("key", spop.Str("broken")))}, "error", "", "broken"},
		{"other message first", []spop.Message{{Name: "other", Args: []spop.KV{arg("key", spop.Str("x"))}}, msg(arg("key", spop.Str("carol")))}, "new", "srv-carol-", "carol"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acts, err := c.Notify(uint64(i+1), 1, tt.msgs...)
			if err != nil {
				t.Fatalf("Notify: %v", err)
			}
			for _, a := range acts {
				if a.Type != spop.ActionSetVar || a.Scope != spop.ScopeTransaction || a.Value.Kind != spop.DataString {
					t.Errorf("action %+v; want set-var in txn scope with a string value", a)
				}
			}
			vars := spoptest.Vars(acts)
			if vars[VarStatus] != tt.wantStatus {
				t.Errorf("status = %q; want %q", vars[VarStatus], tt.wantStatus)
			}
			server, ok := vars[VarServer]
			if tt.wantServer == "" && ok {
				t.Errorf("server = %q; want no server var", server)
			}
			if tt.wantServer != "" && server != tt.wantServer {
				t.Errorf("server = %q; want %q", server, tt.wantServer)
			}
		})
	}
}

func TestUnsupportedArgTypeIsInvalidWithoutDeciding(t *testing.T) {
	d := &fakeDecider{}
	_, addr, _ := startAgent(t, d, Options{})
	c := dial(t, addr)
	for i, v := range []spop.Value{spop.Bool(true)} {
		acts, err := c.Notify(uint64(i+1), 1, msg(arg("key", v)))
		if err != nil {
			t.Fatal(err)
		}
		if got := spoptest.Vars(acts)[VarStatus]; got != "invalid" {
			t.Errorf("key of kind %d: status = %q; want invalid", v.Kind, got)
		}
	}
	// The decider may be asked to resolve the pool (no key), never to seat anyone.
	for _, r := range d.requests() {
		if r.Key != "" {
			t.Errorf("decider asked to seat %q; want no decision for unusable arguments", r.Key)
		}
	}
}

func TestHandlerPanicAnswersErrorAndKeepsServing(t *testing.T) {
	a, addr, _ := startAgent(t, &fakeDecider{}, Options{})
	c := dial(t, addr)
	acts, err := c.Notify(1, 1, msg(arg("key", spop.Str("boom"))))
	if err != nil {
		t.Fatalf("Notify after panic: %v", err)
	}
	vars := spoptest.Vars(acts)
	if vars[VarStatus] != "error" || vars[VarServer] != "" {
		t.Errorf("vars = %v; want status=error and no server", vars)
	}
	acts, err = c.Notify(2, 1, msg(arg("key", spop.Str("dave"))))
	if err != nil {
		t.Fatalf("Notify on the same connection after a panic: %v", err)
	}
	if got := spoptest.Vars(acts)[VarServer]; got != "srv-dave-" {
		t.Errorf("server = %q; want srv-dave-", got)
	}
	if got := a.Stats().Panics; got != 1 {
		t.Errorf("Stats().Panics = %d; want 1", got)
	}
	if got := a.Stats().Decisions["error"]; got != 1 {
		t.Errorf(`Stats().Decisions["error"] = %d; want 1`, got)
	}
}

func TestHealthcheckHello(t *testing.T) {
	_, addr, _ := startAgent(t, &fakeDecider{}, Options{})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	c := spoptest.NewClient(conn)
	kvs, err := c.Hello(true)
	if err != nil {
		t.Fatalf("Hello(healthcheck): %v", err)
	}
	if mfs, ok := spop.ItemUint(kvs, "max-frame-size"); !ok || mfs != uint64(c.MaxFrameSize) {
		t.Errorf("AGENT-HELLO max-frame-size = %d, %v; want %d", mfs, ok, c.MaxFrameSize)
	}
	if _, _, err := c.ReadFrame(); err == nil {
		t.Errorf("connection still open after a healthcheck HELLO; want it closed")
	}
}

func TestShutdownFinishesInFlightMessages(t *testing.T) {
	d := &fakeDecider{block: make(chan struct{})}
	_, addr, cancel := startAgent(t, d, Options{})
	c := dial(t, addr)
	type reply struct {
		vars map[string]string
		err  error
	}
	got := make(chan reply, 1)
	go func() {
		acts, err := c.Notify(1, 1, msg(arg("key", spop.Str("slow"))))
		got <- reply{spoptest.Vars(acts), err}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(d.requests()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the slow message never reached the decider")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	// New connections are refused once shutdown started.
	deadline = time.Now().Add(5 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("agent still accepts connections 5s after shutdown began")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(d.block)
	r := <-got
	if r.err != nil {
		t.Fatalf("in-flight message lost at shutdown: %v", r.err)
	}
	if r.vars[VarServer] != "s-slow" {
		t.Errorf("in-flight answer = %v; want server s-slow", r.vars)
	}
}

func TestHealthArguments(t *testing.T) {
	d := &fakeDecider{}
	_, addr, _ := startAgent(t, d, Options{})
	c := dial(t, addr)
	_, err := c.Notify(1, 1, msg(arg("key", spop.Str("u")), arg("up:web:s1", spop.Bool(true)),
		arg("up:web:s2", spop.Bool(false)), arg("up:api:a1", spop.Bool(false)), arg("up:web:s3", spop.Str("nonsense"))))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Notify(2, 1, msg(arg("key", spop.Str("v"))))
	if err != nil {
		t.Fatal(err)
	}
	reqs := d.requests()
	if len(reqs) != 2 {
		t.Fatalf("decider asked %d times; want 2", len(reqs))
	}
	want := []assign.ServerRef{{Pool: "web", Server: "s2"}, {Pool: "api", Server: "a1"}}
	if got := reqs[0]; !got.Health || fmt.Sprint(got.Down) != fmt.Sprint(want) {
		t.Errorf("with up: arguments, request = %+v; want Health and Down %v", got, want)
	}
	if got := reqs[1]; got.Health || len(got.Down) != 0 {
		t.Errorf("without up: arguments, request = %+v; want no health report", got)
	}
}

// TestQueuedAnswer: a queued user gets their place, and the wait in whole seconds rounded up
// when there is an estimate; never a server.
func TestQueuedAnswer(t *testing.T) {
	_, addr, _ := startAgent(t, &fakeDecider{}, Options{})
	c := dial(t, addr)
	for i, tt := range []struct {
		key  string
		want map[string]string
	}{
		{"queued", map[string]string{VarStatus: "queued", VarPosition: "3", VarWait: "2"}},
		{"queued-no-estimate", map[string]string{VarStatus: "queued", VarPosition: "12"}},
		{"full", map[string]string{VarStatus: "full"}},
	} {
		acts, err := c.Notify(uint64(i+1), 1, msg(arg("key", spop.Str(tt.key))))
		if err != nil {
			t.Fatal(err)
		}
		if got := spoptest.Vars(acts); !maps.Equal(got, tt.want) {
			t.Errorf("%s: vars %v; want %v", tt.key, got, tt.want)
		}
	}
}
