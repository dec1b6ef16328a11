package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/agent/spop"
	"github.com/stickyseat/stickyseat/agent/spop/spoptest"
	"github.com/stickyseat/stickyseat/loadgen"
)

// layers are the SPOP layers --io offers; every test runs on each.
var layers = []string{"agent", "library", "bare"}

func startStateless(t *testing.T, servers []string, io string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, servers, io) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v; want nil after cancel", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("serve did not return within 10s of cancel")
		}
	})
	return ln.Addr().String()
}

func TestSameKeySameServer(t *testing.T) {
	for _, io := range layers {
		t.Run(io, func(t *testing.T) { testSameKeySameServer(t, io) })
	}
}

func testSameKeySameServer(t *testing.T, io string) {
	addr := startStateless(t, []string{"s1", "s2", "s3"}, io)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := spoptest.NewClient(nc)
	defer c.Close()
	if _, err := c.Hello(false); err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	servers := map[string]bool{}
	for i := range 200 {
		key := []string{"alice", "bob", "carol", "dave", "erin"}[i%5]
		acts, err := c.Notify(uint64(i+1), 1, spop.Message{Name: "stickyseat", Args: []spop.KV{{Name: "key", Value: spop.Str(key)}}})
		if err != nil {
			t.Fatal(err)
		}
		vars := spoptest.Vars(acts)
		if vars["status"] != "hit" {
			t.Fatalf("key %q: status %q; want hit", key, vars["status"])
		}
		if prev, ok := seen[key]; ok && prev != vars["server"] {
			t.Errorf("key %q went to %s, then %s", key, prev, vars["server"])
		}
		seen[key] = vars["server"]
		servers[vars["server"]] = true
	}
	for s := range servers {
		if s != "s1" && s != "s2" && s != "s3" {
			t.Errorf("answered server %q; want one of s1, s2, s3", s)
		}
	}
	acts, err := c.Notify(999, 1, spop.Message{Name: "stickyseat"})
	if err != nil {
		t.Fatal(err)
	}
	if got := spoptest.Vars(acts)["status"]; got != "invalid" {
		t.Errorf("no key: status %q; want invalid", got)
	}
}

func TestUnderLoad(t *testing.T) {
	for _, io := range layers {
		t.Run(io, func(t *testing.T) {
			addr := startStateless(t, []string{"s1", "s2", "s3"}, io)
			res, err := loadgen.Run(context.Background(), loadgen.Options{Addr: addr, Requests: 3000, Connections: 3, Pipeline: 20})
			if err != nil {
				t.Fatalf("loadgen.Run: %v", err)
			}
			if res.Decisions != 3000 || res.Statuses["hit"] != 3000 {
				t.Errorf("decisions %d, statuses %v; want 3000 hits", res.Decisions, res.Statuses)
			}
		})
	}
}

func TestRunPrintsAddress(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--servers", "a,b"}, &out) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(out.String(), `"listen":"127.0.0.1:`) {
		t.Errorf("output %q lacks the listen address", out.String())
	}
	if err := run(context.Background(), []string{"--servers", "a,,b"}, &out); err == nil || !strings.Contains(err.Error(), "empty server name") {
		t.Errorf("run with an empty server name = %v; want an error", err)
	}
	if err := run(context.Background(), []string{"--io", "fast"}, &out); err == nil || !strings.Contains(err.Error(), "--io") {
		t.Errorf("run --io fast = %v; want an error naming --io", err)
	}
}
