package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/internal/testbed"
)

// TestServerDown stops one backend under a real haproxy with health checks: from HAProxy's
// report on, the server gets no new users; its users keep their seat for the down grace (and
// are refused, their server being down), then move; when it comes back it takes users again.
func TestServerDown(t *testing.T) { forEachHAProxy(t, testServerDown) }

func testServerDown(t *testing.T, bin string) {
	const grace = time.Second
	s := startStack(t, testbed.StackOptions{HAProxyBin: bin, Mode: "tcp", Servers: []string{"s1", "s2", "s3"},
		MaxUsers: 3, Idle: time.Hour, HealthChecks: true,
		Defaults:  []string{"default-server inter 100ms fall 1 rise 1"},
		AgentArgs: []string{"--down-grace", grace.String()}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var clients []*testbed.Client
	for i := 1; i <= 8; i++ {
		clients = append(clients, testbed.NewClient(fmt.Sprintf("client-%d", i), fmt.Sprintf("127.0.0.%d", 10+i), ""))
	}
	seat := map[string]string{}
	for _, c := range clients[:6] {
		r, err := c.Get(ctx, s.Frontend)
		if err != nil || !r.Seated() {
			t.Fatalf("%s: %s, %v; want a seat", c.Name, r, err)
		}
		seat[c.Name] = r.Server
	}
	if seat["client-1"] != "s1" || seat["client-4"] != "s1" {
		t.Fatalf("seats %v; want client-1 and client-4 on s1", seat)
	}

	s1 := s.Backends[0]
	s1.Stop()
	stopped := time.Now()
	// client-1 is refused while HAProxy sees s1 down and the grace runs, then moves.
	var moved testbed.Reply
	for {
		r, err := clients[0].Get(ctx, s.Frontend)
		if err != nil {
			t.Fatal(err)
		}
		if r.Seated() && r.Server != "s1" {
			moved = r
			break
		}
		if time.Since(stopped) > 15*time.Second {
			t.Fatalf("client-1 not moved 15s after s1 stopped (last reply %s)", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if waited := time.Since(stopped); waited < grace {
		t.Errorf("client-1 moved %s after s1 stopped; the down grace is %s", waited, grace)
	}
	// A newcomer never lands on the down server.
	r, err := clients[6].Get(ctx, s.Frontend)
	if err != nil || !r.Seated() || r.Server == "s1" {
		t.Errorf("newcomer while s1 is down: %s, %v; want a seat on s2 or s3", r, err)
	}
	if r, err := clients[0].Get(ctx, s.Frontend); err != nil || r.Server != moved.Server {
		t.Errorf("client-1 after moving: %s, %v; want it to stay on %s", r, err, moved.Server)
	}

	if err := s1.Restart(); err != nil {
		t.Fatal(err)
	}
	// s1 is back and nearly empty (client-4 never came back to be moved): the next newcomer
	// lands there once HAProxy sees it up.
	deadline := time.Now().Add(15 * time.Second)
	for {
		r, err := clients[7].Get(ctx, s.Frontend)
		if err != nil {
			t.Fatal(err)
		}
		if r.Server == "s1" {
			break
		}
		if r.Seated() {
			t.Fatalf("newcomer seated on %s after s1 came back; want s1 (the least used)", r.Server)
		}
		if time.Now().After(deadline) {
			t.Fatalf("newcomer still refused 15s after s1 came back (%s)", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
