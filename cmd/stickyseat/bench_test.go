package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/agent"
	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/store/memory"
)

// TestBenchAgainstAnAgent runs `stickyseat bench` for a fixed number of decisions against a
// real agent and checks the counts it prints add up; against a peer that answers garbage it
// must fail.
func TestBenchAgainstAnAgent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, err := assign.New(assign.Config{Pools: []assign.Pool{{Name: "default", IdleTimeout: time.Hour,
		Servers: []assign.Server{{Name: "s1", Quota: 30}, {Name: "s2", Quota: 30}}}}}, memory.New(memory.Options{}), assign.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.New(a, agent.Options{}).Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	var out bytes.Buffer
	args := []string{"stickyseat", "bench", "--addr", ln.Addr().String(), "--users", "100", "--dist", "seq",
		"--requests", "500", "--duration", "0", "--connections", "2", "--pipeline", "4", "--json"}
	if err := run(context.Background(), args, &out, &bytes.Buffer{}); err != nil {
		t.Fatalf("bench: %v\n%s", err, out.String())
	}
	var res struct {
		Decisions      int            `json:"decisions"`
		Statuses       map[string]int `json:"statuses"`
		ProtocolErrors int            `json:"protocol_errors"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("bench --json printed %q: %v", out.String(), err)
	}
	// 100 users in sequence, 5 times each, 60 seats: the 60 seated users make 60 new and
	// 240 hits, the 40 others 200 fulls, whatever the order the pipelining gives.
	want := map[string]int{"new": 60, "hit": 240, "full": 200}
	if res.Decisions != 500 || res.ProtocolErrors != 0 || len(res.Statuses) != len(want) {
		t.Errorf("bench = %+v; want 500 decisions, no protocol error, statuses %v", res, want)
	}
	for k, v := range want {
		if res.Statuses[k] != v {
			t.Errorf("bench statuses[%s] = %d; want %d (all: %v)", k, res.Statuses[k], v, res.Statuses)
		}
	}

	// --when-full states what the pool does when full: a rejecting pool fails a run that
	// expects a line, and an unknown value is refused before any load.
	for _, tt := range []struct{ value, want string }{
		{"queue", "status full, want queued"},
		{"sometimes", `--when-full: "sometimes": want reject or queue`},
		{"", `--when-full: "": want reject or queue`},
	} {
		err := run(context.Background(), []string{"stickyseat", "bench", "--addr", ln.Addr().String(), "--users", "100", "--dist", "seq",
			"--requests", "200", "--duration", "0", "--when-full", tt.value}, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("bench --when-full %q against a rejecting pool: %v; want an error mentioning %q", tt.value, err, tt.want)
		}
	}
	if err := run(context.Background(), []string{"stickyseat", "bench", "--addr", ln.Addr().String(), "--users", "100", "--dist", "seq",
		"--requests", "200", "--duration", "0", "--when-full", "reject"}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Errorf("bench --when-full reject against a rejecting pool: %v", err)
	}

	// A peer that answers garbage to the HELLO is a protocol error: bench fails.
	bad, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	go func() {
		for {
			c, err := bad.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			c.Close()
		}
	}()
	err = run(context.Background(), []string{"stickyseat", "bench", "--addr", bad.Addr().String(), "--requests", "10", "--duration", "0"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil {
		t.Errorf("bench against a peer answering garbage: no error")
	}
}
