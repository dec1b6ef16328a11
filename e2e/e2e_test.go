// Package e2e runs stickyseat end to end: the agent binary, real haproxy processes and
// tiny backends on loopback.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/internal/haproxybin"
	"github.com/stickyseat/stickyseat/internal/testbed"
)

// agentBin is the stickyseat binary built once for every test.
var agentBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stickyseat-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	agentBin, err = testbed.BuildAgent(ctx, "..", dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// haproxyBins returns the binaries to run against (HAPROXY_BINS): it fails under CI=true
// when none is installed, and skips elsewhere.
func haproxyBins(t *testing.T) []string { return haproxybin.ForTest(t) }

// forEachHAProxy runs test once per haproxy binary (HAPROXY_BINS), as a subtest named
// after the binary.
func forEachHAProxy(t *testing.T, test func(t *testing.T, bin string)) {
	for _, bin := range haproxyBins(t) {
		t.Run(filepath.Base(bin), func(t *testing.T) { test(t, bin) })
	}
}

// startStack starts a node and stops it when the test ends, printing its logs on failure.
func startStack(t *testing.T, o testbed.StackOptions) *testbed.Stack {
	t.Helper()
	o.AgentBin = agentBin
	o.Dir = t.TempDir()
	s, err := testbed.StartStack(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		if t.Failed() {
			t.Log(s.Logs())
		}
	})
	return s
}

// TestBlogScenario plays the blog's test procedure (3 servers × 2 users, six clients from
// six source addresses, a seventh refused until a seat expires) in tcp mode keyed on the
// source address and in http mode keyed on a header, against every haproxy binary.
func TestBlogScenario(t *testing.T) {
	servers := []string{"s1", "s2", "s3"}
	const quota = 2
	const idle = 2 * time.Second
	for _, bin := range haproxyBins(t) {
		for _, mode := range []string{"tcp", "http"} {
			t.Run(filepath.Base(bin)+"/"+mode, func(t *testing.T) {
				s := startStack(t, testbed.StackOptions{HAProxyBin: bin, Mode: mode, Servers: servers, MaxUsers: quota, Idle: idle})
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				rep, err := testbed.PlayBlog(ctx, s, testbed.BlogClients(mode), idle)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range rep.Verify(servers, quota) {
					if !c.OK {
						t.Errorf("%s: got %s", c.What, c.Got)
					}
				}
				if mode == "http" {
					if got := rep.Steps[2].Replies[0].Status; got != 503 {
						t.Errorf("client 7 refused with HTTP %d; want 503 (all servers full)", got)
					}
				}
			})
		}
	}
}
