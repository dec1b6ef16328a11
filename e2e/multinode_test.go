package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/internal/testbed"
)

// startRedis starts a redis-server for the test: it fails under CI=true when none is
// installed, and skips elsewhere.
func startRedis(t *testing.T, extra ...string) *testbed.Redis {
	t.Helper()
	bin, err := testbed.RedisBin()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v", err)
		}
		t.Skip(err)
	}
	r, err := testbed.StartRedis(bin, t.TempDir(), extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			t.Logf("--- redis ---\n%s", r.Output())
		}
	})
	return r
}

// twoNodes starts two HAProxy nodes, each with its own agent, in front of the same three
// servers, the agents sharing redis.
func twoNodes(t *testing.T, bin, redisURL string, quota int, idle time.Duration) []*testbed.Stack {
	t.Helper()
	backends, err := testbed.StartBackends("s1", "s2", "s3")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testbed.StopBackends(backends) })
	var nodes []*testbed.Stack
	for range 2 {
		nodes = append(nodes, startStack(t, testbed.StackOptions{HAProxyBin: bin, Mode: "tcp", Backends: backends,
			MaxUsers: quota, Idle: idle, Redis: redisURL}))
	}
	return nodes
}

// TestTwoNodesShareSeats: twelve clients alternate between two HAProxy nodes whose agents
// share one Redis; 3 servers × quota 3 seat nine of them, three per server, whichever node
// they use, refuse three on both nodes, and free the seats on both nodes after idle.
func TestTwoNodesShareSeats(t *testing.T) { forEachHAProxy(t, testTwoNodesShareSeats) }

func testTwoNodesShareSeats(t *testing.T, bin string) {
	const idle = 2 * time.Second
	r := startRedis(t)
	nodes := twoNodes(t, bin, r.URL(), 3, idle)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var clients []*testbed.Client
	for i := 1; i <= 12; i++ {
		clients = append(clients, testbed.NewClient(fmt.Sprintf("client-%d", i), fmt.Sprintf("127.0.0.%d", 10+i), ""))
	}
	seat := map[string]string{}
	per := map[string]int{}
	var refused []*testbed.Client
	for i, c := range clients {
		got, err := c.Get(ctx, nodes[i%2].Frontend)
		if err != nil {
			t.Fatal(err)
		}
		if got.Seated() {
			seat[c.Name] = got.Server
			per[got.Server]++
		} else {
			refused = append(refused, c)
		}
	}
	if len(seat) != 9 || per["s1"] != 3 || per["s2"] != 3 || per["s3"] != 3 || len(refused) != 3 {
		t.Fatalf("first visits: seats %v (per server %v), %d refused; want 9 seats, 3 per server, 3 refused", seat, per, len(refused))
	}
	for i, c := range clients {
		for n, node := range nodes {
			got, err := c.Get(ctx, node.Frontend)
			if err != nil {
				t.Fatal(err)
			}
			if got.Server != seat[c.Name] {
				t.Errorf("%s (first on node %d) on node %d: %s; want %q", c.Name, i%2, n, got, seat[c.Name])
			}
		}
	}
	quietSince := time.Now()

	// After idle with no traffic every seat frees: the refused clients get in, through
	// either node.
	deadline := time.Now().Add(idle + 5*time.Second)
	for i, c := range refused {
		node := nodes[i%2]
		for {
			got, err := c.Get(ctx, node.Frontend)
			if err != nil {
				t.Fatal(err)
			}
			if got.Seated() {
				if waited := time.Since(quietSince); waited < idle-100*time.Millisecond {
					t.Errorf("%s seated %s after the last request; seats must live %s", c.Name, waited, idle)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still refused on node %d %s after the last request (idle %s)", c.Name, i%2, time.Since(quietSince), idle)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestRedisOutage stops Redis under two nodes: seated users keep their server, new users are
// refused, nothing crashes; once Redis is back new users are seated, without restarting
// anything. Redis runs with an append-only file, as a production Redis keeping seats would.
func TestRedisOutage(t *testing.T) { forEachHAProxy(t, testRedisOutage) }

func testRedisOutage(t *testing.T, bin string) {
	r := startRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	nodes := twoNodes(t, bin, r.URL(), 2, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	known := []*testbed.Client{
		testbed.NewClient("known-1", "127.0.0.11", ""),
		testbed.NewClient("known-2", "127.0.0.12", ""),
		testbed.NewClient("known-3", "127.0.0.13", ""),
	}
	newcomer := testbed.NewClient("newcomer", "127.0.0.14", "")
	seat := map[string]string{}
	for i, c := range known {
		got, err := c.Get(ctx, nodes[i%2].Frontend)
		if err != nil || !got.Seated() {
			t.Fatalf("%s before the outage: %s, %v; want a seat", c.Name, got, err)
		}
		seat[c.Name] = got.Server
		// Both agents learn the seat, as users of a real deployment hit both nodes.
		if got, err := c.Get(ctx, nodes[(i+1)%2].Frontend); err != nil || got.Server != seat[c.Name] {
			t.Fatalf("%s on the other node: %s, %v; want %s", c.Name, got, err, seat[c.Name])
		}
	}

	r.Stop()
	for round := range 3 {
		for _, c := range known {
			for n, node := range nodes {
				got, err := c.Get(ctx, node.Frontend)
				if err != nil {
					t.Fatal(err)
				}
				if got.Server != seat[c.Name] {
					t.Errorf("Redis down, round %d: %s on node %d got %s; want its server %s", round, c.Name, n, got, seat[c.Name])
				}
			}
		}
		for n, node := range nodes {
			got, err := newcomer.Get(ctx, node.Frontend)
			if err != nil {
				t.Fatal(err)
			}
			if got.Seated() {
				t.Errorf("Redis down: newcomer on node %d got %s; want refused", n, got)
			}
		}
	}
	for n, node := range nodes {
		if ok, err := node.Agent.Exited(); ok {
			t.Fatalf("agent of node %d exited during the outage: %v", n, err)
		}
	}

	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for n, node := range nodes {
		for {
			got, err := newcomer.Get(ctx, node.Frontend)
			if err != nil {
				t.Fatal(err)
			}
			if got.Seated() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("newcomer still refused on node %d 15s after Redis came back", n)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, c := range known {
		for n, node := range nodes {
			if got, err := c.Get(ctx, node.Frontend); err != nil || got.Server != seat[c.Name] {
				t.Errorf("after the outage: %s on node %d got %s, %v; want %s", c.Name, n, got, err, seat[c.Name])
			}
		}
	}
}
