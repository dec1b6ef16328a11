package haproxy

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// These tests prove the generated form routes on a real haproxy: each starts haproxy with a
// rendered config, a fake agent and fake servers, and sends real requests.

const httpNoServer = "No server is available" // HAProxy's own 503 body

func TestRoutingHTTP(t *testing.T) {
	for _, bin := range haproxyBins(t) {
		t.Run(binName(bin), func(t *testing.T) {
			c := validConfig()
			c.Mode, c.SendPool, c.SendBody, c.Key = ModeHTTP, true, true, DefaultKeyHTTP
			r := startRig(t, bin, c, true, nil)
			r.agent.setAnswer(func(args map[string]any) seat {
				switch key, _ := args["key"].(string); key {
				case "":
					return seat{status: "invalid"}
				case "alice":
					return seat{server: "s2", status: "new"}
				case "bob":
					return seat{server: "s1", status: "hit"}
				case "carol":
					return seat{status: "full"}
				case "dave":
					return seat{status: "error"}
				case "ghost":
					return seat{server: "s9", status: "new"} // a server HAProxy does not know
				default:
					return seat{} // no vars at all
				}
			})

			tests := []struct {
				user     string
				want     response
				wantHits string
			}{
				{"alice", response{200, "s2", ""}, "s2=1"},
				{"bob", response{200, "s1", ""}, "s1=1"},
				{"", response{400, InvalidText + "\n", ""}, ""},
				{"carol", response{503, FullText + "\n", "30"}, ""},
				{"dave", response{503, UnavailableText + "\n", ""}, ""},
				{"erin", response{503, UnavailableText + "\n", ""}, ""},
			}
			for _, tt := range tests {
				got, err := r.do("POST", "/", tt.user, "body of "+tt.user)
				if err != nil {
					t.Fatalf("POST as %q: %v", tt.user, err)
				}
				if got != tt.want {
					t.Errorf("POST as %q = %+v; want %+v", tt.user, got, tt.want)
				}
				if hits := r.hits(); hits != tt.wantHits {
					t.Errorf("POST as %q reached servers %q; want %q", tt.user, hits, tt.wantHits)
				}
				calls := r.agent.takeCalls()
				if len(calls) != 1 {
					t.Fatalf("POST as %q sent %d messages to the agent; want 1", tt.user, len(calls))
				}
				if got, want := calls[0]["pool"], any("web"); got != want {
					t.Errorf("POST as %q: pool arg = %#v; want %#v", tt.user, got, want)
				}
				if got, want := string(asBytes(calls[0]["body"])), "body of "+tt.user; got != want {
					t.Errorf("POST as %q: body arg = %q; want %q", tt.user, got, want)
				}
			}

			// weight 0 at work: a server name HAProxy does not know falls through to
			// balancing, which has no server to give.
			got, err := r.do("GET", "/", "ghost", "")
			if err != nil {
				t.Fatalf("GET as ghost: %v", err)
			}
			if got.status != 503 || !strings.Contains(got.body, httpNoServer) {
				t.Errorf("GET as ghost = %+v; want HAProxy's 503 %q", got, httpNoServer)
			}
			if hits := r.hits(); hits != "" {
				t.Errorf("GET as ghost reached servers %q; want none", hits)
			}
		})
	}
}

func TestRoutingTCP(t *testing.T) {
	const get = "GET / HTTP/1.1\r\nHost: stickyseat\r\nConnection: close\r\n\r\n"
	for _, bin := range haproxyBins(t) {
		t.Run(binName(bin), func(t *testing.T) {
			r := startRig(t, bin, validConfig(), true, nil) // tcp, key=src

			r.agent.setAnswer(always(seat{server: "s2", status: "new"}))
			got, err := r.do("GET", "/", "", "")
			if err != nil {
				t.Fatalf("GET with seat s2: %v", err)
			}
			if got.status != 200 || got.body != "s2" {
				t.Errorf("GET with seat s2 = %+v; want 200 from s2", got)
			}
			calls := r.agent.takeCalls()
			if len(calls) != 1 {
				t.Fatalf("GET sent %d messages to the agent; want 1", len(calls))
			}
			if ip, ok := calls[0]["key"].(net.IP); !ok || !ip.Equal(net.IPv4(127, 0, 0, 1)) {
				t.Errorf("key arg = %#v; want net.IP 127.0.0.1", calls[0]["key"])
			}
			if _, ok := calls[0]["pool"]; ok {
				t.Errorf("pool arg sent without SendPool: %#v", calls[0]["pool"])
			}
			if hits := r.hits(); hits != "s2=1" {
				t.Errorf("GET with seat s2 reached servers %q; want s2=1", hits)
			}

			for _, tt := range []struct {
				name string
				seat seat
			}{
				{"full", seat{status: "full"}},
				{"error", seat{status: "error"}},
				{"no vars", seat{}},
				{"unknown server", seat{server: "s9", status: "new"}},
			} {
				r.agent.setAnswer(always(tt.seat))
				if err := r.refused(get); err != nil {
					t.Errorf("answer %s: want the connection closed without a response: %v", tt.name, err)
				}
				if hits := r.hits(); hits != "" {
					t.Errorf("answer %s reached servers %q; want none", tt.name, hits)
				}
			}
		})
	}
}

// TestRoutingTCPLayer7Key checks a header key in tcp mode: the send-spoe-group rule waits
// for the header instead of sending an empty key.
func TestRoutingTCPLayer7Key(t *testing.T) {
	for _, bin := range haproxyBins(t) {
		t.Run(binName(bin), func(t *testing.T) {
			c := validConfig()
			c.Key = "req.hdr(x-user)"
			r := startRig(t, bin, c, true, nil)
			r.agent.setAnswer(func(args map[string]any) seat {
				if args["key"] == "alice" {
					return seat{server: "s1", status: "new"}
				}
				return seat{status: "invalid"}
			})

			conn, err := net.DialTimeout("tcp", r.front, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: stickyseat\r\n")); err != nil {
				t.Fatal(err)
			}
			// A negative check needs some time to pass: HAProxy has the first half of the
			// request and must not ask the agent yet.
			time.Sleep(300 * time.Millisecond)
			if calls := r.agent.takeCalls(); len(calls) != 0 {
				t.Fatalf("agent asked before the header arrived: %v", calls)
			}
			if _, err := conn.Write([]byte("X-User: alice\r\nConnection: close\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4096)
			var resp []byte
			for !strings.HasSuffix(string(resp), "\r\n\r\ns1") {
				n, err := conn.Read(buf)
				resp = append(resp, buf[:n]...)
				if err != nil {
					t.Fatalf("read response: %v; got %q", err, resp)
				}
			}
			calls := r.agent.takeCalls()
			if len(calls) != 1 || calls[0]["key"] != "alice" {
				t.Errorf("agent got %v; want one message with key alice", calls)
			}
			if hits := r.hits(); hits != "s1=1" {
				t.Errorf("alice reached servers %q; want s1=1", hits)
			}

			// This backend routes with one use-server rule per server: a server name it
			// does not list must still be refused, never balanced.
			r.agent.setAnswer(always(seat{server: "s9", status: "new"}))
			if err := r.refused("GET / HTTP/1.1\r\nHost: stickyseat\r\nX-User: bob\r\n\r\n"); err != nil {
				t.Errorf("answer s9: want the connection closed without a response: %v", err)
			}
			if hits := r.hits(); hits != "" {
				t.Errorf("answer s9 reached servers %q; want none", hits)
			}
		})
	}
}

// TestRoutingSeveralPools checks the pool argument of several pools: each backend sets
// txn.stickyseat_pool before sending the one shared message.
func TestRoutingSeveralPools(t *testing.T) {
	for _, bin := range haproxyBins(t) {
		t.Run(binName(bin), func(t *testing.T) {
			c := validConfig()
			c.Mode = ModeHTTP
			c.Pools = []Pool{
				{Name: "a", Servers: []Server{{Name: "s1"}, {Name: "s2"}}},
				{Name: "b", Servers: []Server{{Name: "s3"}}},
			}
			r := startRig(t, bin, c, true, func(cfg string) string {
				// The user's own routing between pools, as the generated comment suggests.
				return strings.Replace(cfg, "    default_backend stickyseat_a\n",
					"    use_backend stickyseat_b if { path_beg /b }\n    default_backend stickyseat_a\n", 1)
			})
			r.agent.setAnswer(func(args map[string]any) seat {
				switch args["pool"] {
				case "a":
					return seat{server: "s2", status: "new"}
				case "b":
					return seat{server: "s3", status: "new"}
				}
				return seat{}
			})
			for _, tt := range []struct{ path, wantPool, wantServer string }{
				{"/", "a", "s2"},
				{"/b/x", "b", "s3"},
			} {
				got, err := r.do("GET", tt.path, "alice", "")
				if err != nil {
					t.Fatalf("GET %s: %v", tt.path, err)
				}
				if got.status != 200 || got.body != tt.wantServer {
					t.Errorf("GET %s = %+v; want 200 from %s", tt.path, got, tt.wantServer)
				}
				calls := r.agent.takeCalls()
				if len(calls) != 1 || calls[0]["pool"] != tt.wantPool || calls[0]["key"] != "alice" {
					t.Errorf("GET %s: agent got %v; want one message with pool %s, key alice", tt.path, calls, tt.wantPool)
				}
			}
		})
	}
}

// TestRoutingFailClosed checks that a request is refused, never balanced, when the agent
// does not answer: nothing listens at its address, or it answers after the processing timeout.
// HAProxy waits the whole "timeout processing" in both cases (it sets txn.stickyseat.error
// to 1, a timeout, even when the connection is refused).
func TestRoutingFailClosed(t *testing.T) {
	for _, bin := range haproxyBins(t) {
		t.Run(binName(bin), func(t *testing.T) {
			t.Run("http", func(t *testing.T) {
				c := validConfig()
				c.Mode = ModeHTTP
				r := startRig(t, bin, c, false, nil)
				got, err := r.do("GET", "/", "alice", "")
				if err != nil {
					t.Fatal(err)
				}
				if want := (response{503, UnavailableText + "\n", ""}); got != want {
					t.Errorf("GET with the agent down = %+v; want %+v", got, want)
				}
				if hits := r.hits(); hits != "" {
					t.Errorf("GET with the agent down reached servers %q; want none", hits)
				}
			})
			t.Run("tcp", func(t *testing.T) {
				r := startRig(t, bin, validConfig(), false, nil)
				if err := r.refused("GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					t.Errorf("with the agent down: want the connection closed without a response: %v", err)
				}
				if hits := r.hits(); hits != "" {
					t.Errorf("with the agent down reached servers %q; want none", hits)
				}
			})
			t.Run("slow agent", func(t *testing.T) {
				c := validConfig()
				c.Mode, c.ProcessingTimeout = ModeHTTP, 200*time.Millisecond
				r := startRig(t, bin, c, true, nil)
				release := make(chan struct{})
				t.Cleanup(func() { close(release) })
				r.agent.setAnswer(func(map[string]any) seat {
					<-release // answers only once the test is over
					return seat{server: "s1", status: "new"}
				})
				got, err := r.do("GET", "/", "alice", "")
				if err != nil {
					t.Fatal(err)
				}
				if want := (response{503, UnavailableText + "\n", ""}); got != want {
					t.Errorf("GET with a slow agent = %+v; want %+v", got, want)
				}
				if hits := r.hits(); hits != "" {
					t.Errorf("GET with a slow agent reached servers %q; want none", hits)
				}
			})
		})
	}
}

// TestRoutingAgentBack checks that a request arriving while the agent is down (restarting)
// is answered once the agent is back, within the processing timeout, rather than refused when
// that timeout ends: HAProxy retries the refused connection to the agent after
// min(timeout connect, 1s), so the agent backend's connect timeout must leave room for that.
func TestRoutingAgentBack(t *testing.T) {
	for _, bin := range haproxyBins(t) {
		t.Run(binName(bin), func(t *testing.T) {
			c := validConfig()
			c.Mode = ModeHTTP
			r := startRig(t, bin, c, false, nil)
			type result struct {
				resp response
				err  error
				took time.Duration
			}
			done := make(chan result, 1)
			start := time.Now()
			go func() {
				got, err := r.do("GET", "/", "alice", "")
				done <- result{got, err, time.Since(start)}
			}()
			// Wait until the request has met the agent down: HAProxy counts the retry of the
			// refused connection to the agent (wretr of stickyseat_agent/agent1 in "show stat").
			waitAgentConnError(t, r.sock)
			select {
			case res := <-done:
				t.Fatalf("GET answered before the agent started: %+v after %s", res, res.took)
			default:
			}
			agent, _ := startFakeAgentOn(t, r.agentAddr, always(seat{server: "s1", status: "new"}))
			r.agent = agent
			res := <-done
			if res.err != nil {
				t.Fatal(res.err)
			}
			if want := (response{200, "s1", ""}); res.resp != want {
				t.Errorf("GET while the agent restarted = %+v after %s; want %+v (retried once the agent was back)", res.resp, res.took, want)
			}
		})
	}
}

// waitAgentConnError polls HAProxy's "show stat" until a connection to the agent server has
// been retried (it was refused), or fails the test after 10s.
func waitAgentConnError(t *testing.T, sock string) {
	t.Helper()
	rt := Runtime{Addr: sock}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		out, err := rt.Command(ctx, "show stat")
		cancel()
		if err == nil {
			for _, line := range strings.Split(out, "\n") {
				f := strings.Split(line, ",")
				// pxname,svname,...: wretr is the 16th field.
				if len(f) > 15 && f[0] == AgentBackend && f[1] == "agent1" && f[15] != "" && f[15] != "0" {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no retried connection to the agent counted by HAProxy after 10s (last: %v)\n%s", err, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func asBytes(v any) []byte {
	switch v := v.(type) {
	case []byte:
		return v
	case string:
		return []byte(v)
	}
	return nil
}
