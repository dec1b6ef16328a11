package e2e

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/haproxy"
	"github.com/stickyseat/stickyseat/internal/testbed"
)

// TestLineScenario plays the blog's procedure with a line, through the real agent and
// HAProxy in tcp mode (key = source address: a waiting user's connection is closed) and
// http mode (key = x-user: a 503 page shows the place): clients 7, 8 and 9 wait at places
// 1, 2, 3 and, although they retry tail first, get the seats clients 1, 2, 3 free in that
// order.
func TestLineScenario(t *testing.T) {
	servers := []string{"s1", "s2", "s3"}
	const quota = 2
	const idle = 2 * time.Second
	for _, bin := range haproxyBins(t) {
		for _, mode := range []string{"tcp", "http"} {
			t.Run(filepath.Base(bin)+"/"+mode, func(t *testing.T) {
				s := startStack(t, testbed.StackOptions{HAProxyBin: bin, Mode: mode, Servers: servers, MaxUsers: quota, Idle: idle,
					Queue: true, Admin: true})
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				rep, err := testbed.PlayLine(ctx, s, testbed.LineClients(mode), idle)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range rep.Verify(servers, quota) {
					if !c.OK {
						t.Errorf("%s: got %s", c.What, c.Got)
					}
				}
				for _, r := range rep.Steps[2].Replies {
					if mode == "http" && r.Status != http.StatusServiceUnavailable {
						t.Errorf("%s waiting: HTTP %d; want 503", r.Client, r.Status)
					}
					if mode == "tcp" && (r.Status != 0 || r.Seated()) {
						t.Errorf("%s waiting: %s; want the connection closed", r.Client, r)
					}
				}
			})
		}
	}
}

// TestLineOrderAnyRetryOrder: three seats are taken and six users wait; each time a seat is
// freed (admin evict), the waiting users retry in a random order and exactly the head of
// the line gets the seat, the others keep their places moved up by one. tcp and http.
func TestLineOrderAnyRetryOrder(t *testing.T) {
	for _, bin := range haproxyBins(t) {
		for _, mode := range []string{"tcp", "http"} {
			t.Run(filepath.Base(bin)+"/"+mode, func(t *testing.T) {
				s := startStack(t, testbed.StackOptions{HAProxyBin: bin, Mode: mode, Servers: []string{"s1", "s2", "s3"},
					MaxUsers: 1, Idle: time.Minute, Queue: true, Admin: true})
				clients := numbered(mode, 9)
				seatedKeys := map[string]string{}
				for _, c := range clients[:3] {
					seatedKeys[c.Name] = key(c)
				}
				checkArrivalOrder(t, []*testbed.Stack{s}, clients, 3, seatedKeys)
			})
		}
	}
}

// TestLineAcrossNodes: two HAProxy nodes with their own agents on one Redis; users queued
// alternately through both nodes are seated strictly in arrival order, whichever node they
// retry through and in whatever order.
func TestLineAcrossNodes(t *testing.T) { forEachHAProxy(t, testLineAcrossNodes) }

func testLineAcrossNodes(t *testing.T, bin string) {
	r := startRedis(t)
	backends, err := testbed.StartBackends("s1", "s2", "s3")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testbed.StopBackends(backends) })
	var nodes []*testbed.Stack
	for range 2 {
		nodes = append(nodes, startStack(t, testbed.StackOptions{HAProxyBin: bin, Mode: "tcp", Backends: backends,
			MaxUsers: 1, Idle: time.Minute, Redis: r.URL(), Queue: true, Admin: true}))
	}
	clients := numbered("tcp", 11)
	seatedKeys := map[string]string{}
	for _, c := range clients[:3] {
		seatedKeys[c.Name] = key(c)
	}
	checkArrivalOrder(t, nodes, clients, 3, seatedKeys)
}

// numbered returns n users from 127.0.0.11 on; in http mode they also send x-user.
func numbered(mode string, n int) []*testbed.Client {
	var cs []*testbed.Client
	for i := 1; i <= n; i++ {
		user := ""
		if mode == "http" {
			user = fmt.Sprintf("user-%d", i)
		}
		cs = append(cs, testbed.NewClient(fmt.Sprintf("client-%d", i), fmt.Sprintf("127.0.0.%d", 10+i), user))
	}
	return cs
}

// key is the key the agent sees for c.
func key(c *testbed.Client) string {
	if c.User != "" {
		return c.User
	}
	return c.Source
}

// checkArrivalOrder seats the first seats clients, then makes the others arrive in order,
// alternating between the nodes, and checks their places against the line every node's
// agent lists. Then, once per waiting user: a seated user is evicted (through the nodes in
// turn), every waiting user retries in a random order through a random node, and only the
// head of the line may be seated, on the freed server.
func checkArrivalOrder(t *testing.T, nodes []*testbed.Stack, clients []*testbed.Client, seats int, seatedKeys map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	server := map[string]string{}
	for i, c := range clients[:seats] {
		got, err := c.Get(ctx, nodes[i%len(nodes)].Frontend)
		if err != nil || !got.Seated() {
			t.Fatalf("%s: %s, %v; want a seat", c.Name, got, err)
		}
		server[c.Name] = got.Server
	}
	waiting := clients[seats:]
	for i, c := range waiting {
		got, err := c.Get(ctx, nodes[i%len(nodes)].Frontend)
		if err != nil {
			t.Fatal(err)
		}
		checkWaiting(t, nodes[i%len(nodes)], c, got, i+1)
	}
	for n, node := range nodes {
		l, err := node.Line(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, c := range waiting {
			want = append(want, key(c))
		}
		if !slices.Equal(l.Keys(), want) {
			t.Fatalf("line listed by node %d's agent: %v; want %v", n, l.Keys(), want)
		}
	}

	rng := rand.New(rand.NewPCG(1, 2))
	seated := clients[:seats]
	for round := 0; len(waiting) > 0; round++ {
		leaving := seated[0]
		seated = seated[1:]
		if err := nodes[round%len(nodes)].Evict(ctx, seatedKeys[leaving.Name]); err != nil {
			t.Fatal(err)
		}
		order := rng.Perm(len(waiting))
		// The head last, when that is possible, so others ask while the seat is free.
		if i := slices.Index(order, 0); i >= 0 && len(order) > 1 {
			order[i], order[len(order)-1] = order[len(order)-1], order[i]
		}
		var next []*testbed.Client
		for _, j := range order {
			c := waiting[j]
			node := nodes[rng.IntN(len(nodes))]
			got, err := c.Get(ctx, node.Frontend)
			if err != nil {
				t.Fatal(err)
			}
			if j == 0 {
				if got.Server != server[leaving.Name] {
					t.Fatalf("round %d: head %s after %s left %s: %s; want %s", round, c.Name, leaving.Name, server[leaving.Name], got, server[leaving.Name])
				}
				continue
			}
			if got.Seated() {
				t.Fatalf("round %d: %s at place %d seated on %s ahead of %s", round, c.Name, j+1, got.Server, waiting[0].Name)
			}
			// Until the head has asked, places are unchanged; after, one less.
			checkWaiting(t, node, c, got, j+1)
		}
		head := waiting[0]
		server[head.Name] = server[leaving.Name]
		seatedKeys[head.Name] = key(head)
		seated = append(seated, head)
		next = append(next, waiting[1:]...)
		waiting = next
		for i, c := range waiting {
			node := nodes[rng.IntN(len(nodes))]
			got, err := c.Get(ctx, node.Frontend)
			if err != nil {
				t.Fatal(err)
			}
			checkWaiting(t, node, c, got, i+1)
		}
	}
	// Everyone kept their seat.
	for _, c := range seated {
		for n, node := range nodes {
			got, err := c.Get(ctx, node.Frontend)
			if err != nil || got.Server != server[c.Name] {
				t.Errorf("%s on node %d at the end: %s, %v; want %s", c.Name, n, got, err, server[c.Name])
			}
		}
	}
}

// checkWaiting checks that c was refused and waits at place want: in http mode as the page
// HAProxy answered shows (503), in tcp mode as the node's agent lists it (connection closed).
func checkWaiting(t *testing.T, node *testbed.Stack, c *testbed.Client, got testbed.Reply, want int) {
	t.Helper()
	if got.Seated() {
		t.Fatalf("%s: seated on %s; want waiting at place %d", c.Name, got.Server, want)
	}
	if node.Mode == "http" {
		if got.Status != http.StatusServiceUnavailable || got.Place != want {
			t.Fatalf("%s: %s; want 503 at place %d", c.Name, got, want)
		}
		return
	}
	if got.Status != 0 {
		t.Fatalf("%s: %s; want the connection closed", c.Name, got)
	}
	l, err := node.Line(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if p := l.Place(key(c)); p != want {
		t.Fatalf("%s: at place %d in the agent's line %v; want %d", c.Name, p, l.Keys(), want)
	}
}

// TestRejectStaysDefault: without --when-full the agent answers full, and HAProxy's http
// answer is the full one (Retry-After 30, the plain text), with no place and no line.
func TestRejectStaysDefault(t *testing.T) {
	forEachHAProxy(t, func(t *testing.T, bin string) {
		s := startStack(t, testbed.StackOptions{HAProxyBin: bin, Mode: "http", Servers: []string{"s1"}, MaxUsers: 1,
			Idle: time.Minute, Admin: true})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if got, err := testbed.NewClient("a", "127.0.0.11", "a").Get(ctx, s.Frontend); err != nil || !got.Seated() {
			t.Fatalf("first user: %s, %v; want a seat", got, err)
		}
		for _, user := range []string{"b", "c"} {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Frontend+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-User", user)
			resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "30" || strings.TrimSpace(string(body)) != strings.TrimSpace(haproxy.FullText) {
				t.Errorf("%s with every seat taken: %d Retry-After %q %q; want 503 Retry-After 30 %q", user, resp.StatusCode,
					resp.Header.Get("Retry-After"), body, haproxy.FullText)
			}
		}
		if _, err := s.Line(ctx); err == nil || !strings.Contains(err.Error(), "404") {
			t.Errorf("GET /api/queue without a line: %v; want 404", err)
		}
	})
}

// TestReadmeQueueRules: the http rules the README shows for a pool with a line are the
// generator's, line for line (the page is shortened there with "…": each piece between them
// must be in the generated line).
func TestReadmeQueueRules(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## A fair line when every seat is taken\n")
	if !ok {
		t.Fatal(`README.md has no "## A fair line when every seat is taken" section`)
	}
	_, block, ok := strings.Cut(section, "\n```haproxy\n")
	if !ok {
		t.Fatal("the README's line section has no haproxy block")
	}
	block, _, _ = strings.Cut(block, "\n```\n")
	cfg := haproxy.Config{Mode: haproxy.ModeHTTP, FrontendBind: ":8080", AgentAddr: "127.0.0.1:12345", Pools: []haproxy.Pool{{
		Name: "default", Queue: true, Servers: []haproxy.Server{{Name: "s1", Addr: "10.0.0.1:8080"}}}}}
	main, spoe, err := haproxy.Render(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(spoe), "register-var-names status server error position wait") {
		t.Errorf("SPOE file does not register position and wait:\n%s", spoe)
	}
	generated := strings.Split(string(main), "\n")
	for _, line := range strings.Split(block, "\n") {
		pieces := strings.Split(line, "…")
		if !slices.ContainsFunc(generated, func(g string) bool {
			if !strings.HasPrefix(g, pieces[0]) || !strings.HasSuffix(g, pieces[len(pieces)-1]) {
				return false
			}
			rest := g
			for _, p := range pieces {
				i := strings.Index(rest, p)
				if i < 0 {
					return false
				}
				rest = rest[i+len(p):]
			}
			return true
		}) {
			t.Errorf("README line not generated:\n%s", line)
		}
	}
}
