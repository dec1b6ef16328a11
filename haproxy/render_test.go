package haproxy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// contractLines must appear, verbatim, in every render of the given mode: they are the
// HAProxy side of the contract with the agent (message, variables, fail-closed refusals).
var contractLines = map[string]struct{ cfg, spoe []string }{
	ModeTCP: {
		cfg: []string{
			"    tcp-request inspect-delay ",
			"    tcp-request content send-spoe-group stickyseat stickyseat if { ",
			"    tcp-request content reject unless { var(txn.stickyseat.server) -m found }\n",
			"backend stickyseat_agent\n    mode tcp\n",
			"    timeout connect 250ms\n",
			"    timeout server 3m\n",
		},
	},
	ModeHTTP: {
		cfg: []string{
			"    http-request send-spoe-group stickyseat stickyseat\n",
			`    http-request return status 400 content-type text/plain string "stickyseat: no user key in the request\n" if { var(txn.stickyseat.status) -m str invalid }` + "\n",
			`    http-request return status 503 content-type text/plain string "stickyseat: every server is full, retry later\n" hdr Retry-After 30 if { var(txn.stickyseat.status) -m str full }` + "\n",
			`    http-request return status 503 content-type text/plain string "stickyseat: seat service unavailable\n" unless { var(txn.stickyseat.server) -m found }` + "\n",
			"backend stickyseat_agent\n    mode tcp\n",
		},
	},
}

// dynamicUseServer is the contract's routing rule; tcp backends whose key reads HTTP get
// one static rule per server instead (HAProxy 3.0.0 refuses the dynamic one there).
const dynamicUseServer = "    use-server %[var(txn.stickyseat.server)] if { var(txn.stickyseat.server) -m found }\n"

var spoeContract = []string{
	"[stickyseat]\n",
	"spoe-agent stickyseat\n",
	"    groups stickyseat\n",
	"    option var-prefix stickyseat\n",
	"    option set-on-error error\n",
	"    timeout hello 2s\n",
	"    timeout idle 2m\n",
	"    timeout processing 1s\n",
	"    use-backend stickyseat_agent\n",
	"spoe-message stickyseat\n",
	"spoe-group stickyseat\n    messages stickyseat\n",
}

// renderCase is one config every render test and the haproxy -c test go through.
type renderCase struct {
	name string
	c    Config
	// args is the exact "args" line of the SPOE message.
	args string
}

// keyForms are the key forms haproxy-config accepts (KeySpec's input), each with the
// sample it sends; "body" has none (the agent reads the key from the body).
var keyForms = []string{"", "src", "header:x-user", "cookie:sid", "param:user", "body",
	"req.cook(sid),lower", "src,ipmask(24)", "req.body_param(user)"}

// renderCases is the whole matrix: both modes x every key form x the message variants (one
// pool, pool=str(NAME), several pools, connection tracking, the src fallback), minus the
// combinations Validate refuses, plus a few settings of their own.
func renderCases() []renderCase {
	var cases []renderCase
	for _, mode := range []string{ModeTCP, ModeHTTP} {
		for _, form := range keyForms {
			key, body := "", false
			if form != "" {
				var err error
				if key, body, err = KeySpec(form); err != nil {
					panic(fmt.Sprintf("KeySpec(%q): %v", form, err))
				}
			}
			if mode == ModeTCP && (body || strings.Contains(key, "req.body")) {
				continue // the body is http mode only (Validate refuses SendBody in tcp)
			}
			for _, variant := range []string{"", "pool", "several pools", "track", "src fallback", "queue", "fast path", "fast path tracking connections"} {
				c := validConfig()
				c.Mode, c.Key, c.SendBody = mode, key, body
				keyArg := key
				if keyArg == "" && !body {
					keyArg = DefaultKeyTCP
					if mode == ModeHTTP {
						keyArg = DefaultKeyHTTP
					}
				}
				var args []string
				if keyArg != "" {
					args = append(args, "key="+keyArg)
				}
				switch variant {
				case "pool":
					c.SendPool = true
					args = append(args, "pool=str(web)")
				case "several pools":
					c.Pools = append(c.Pools, Pool{Name: "api", Backend: "be_api", Servers: []Server{{Name: "a1", Addr: "[::1]:9101"}}})
					args = append(args, "pool=var(txn.stickyseat_pool)")
				case "track":
					if keyArg == "" {
						continue // Validate: a key read from the body cannot be tracked
					}
					c.TrackConnections = true
				case "fast path", "fast path tracking connections":
					if keyArg == "" {
						continue // Validate: HAProxy cannot look up a key the agent reads from the body
					}
					c.FastPath, c.FastPathWindow = true, 5*time.Second
					c.TrackConnections = variant == "fast path tracking connections"
					// Several pools, each with its own table.
					c.Pools = append(c.Pools, Pool{Name: "api", Backend: "be_api", Servers: []Server{{Name: "a1", Addr: "[::1]:9101"}}})
					args = append(args, "pool=var(txn.stickyseat_pool)")
				case "src fallback":
					c.SendSrc = true
				case "queue":
					c.Pools = append(c.Pools, Pool{Name: "api", Backend: "be_api", Servers: []Server{{Name: "a1", Addr: "[::1]:9101"}}, Queue: true})
					args = append(args, "pool=var(txn.stickyseat_pool)")
				}
				if body {
					args = append(args, "body=req.body")
				}
				if variant == "src fallback" {
					args = append(args, "src=src")
				}
				name := mode + "/" + form
				if form == "" {
					name = mode + "/default key"
				}
				if variant != "" {
					name += "/" + variant
				}
				cases = append(cases, renderCase{name, c, strings.Join(args, " ")})
			}
		}
	}

	noChecks := validConfig()
	noChecks.NoHealthChecks, noChecks.FrontendBind, noChecks.RetryAfter = true, "*:8080", 1500*time.Millisecond
	cases = append(cases, renderCase{"tcp/no checks", noChecks, "key=src"})
	noChecksHTTP := noChecks
	noChecksHTTP.Mode, noChecksHTTP.Key, noChecksHTTP.RetryAfter = ModeHTTP, "req.cook(sid)", 0
	cases = append(cases, renderCase{"http/no checks", noChecksHTTP, "key=req.cook(sid)"})
	return cases
}

func TestRenderCasesCoverTheMatrix(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range renderCases() {
		seen[tc.name] = true
	}
	for _, want := range []string{"tcp/header:x-user", "tcp/cookie:sid/pool", "tcp/param:user/track", "http/header:x-user/queue", "tcp/src/queue",
		"tcp/header:x-user/several pools", "http/body/several pools", "http/cookie:sid/src fallback",
		"tcp/src/fast path", "tcp/header:x-user/fast path tracking connections", "http/req.body_param(user)/fast path", "http/default key/fast path"} {
		if !seen[want] {
			t.Errorf("renderCases() lacks %q", want)
		}
	}
}

func TestRenderContract(t *testing.T) {
	for _, tc := range renderCases() {
		t.Run(tc.name, func(t *testing.T) {
			cfg, spoe, err := Render(tc.c)
			if err != nil {
				t.Fatalf("Render() error: %v", err)
			}
			c := tc.c.withDefaults()
			want := contractLines[c.Mode]
			wantCfg := append([]string{}, want.cfg...)
			static := c.Mode == ModeTCP && c.Key != "src" && !strings.HasPrefix(c.Key, "src,")
			if !static {
				wantCfg = append(wantCfg, dynamicUseServer)
			} else if strings.Contains(string(cfg), "\n    use-server %[") {
				t.Errorf("Render() cfg has a dynamic use-server in a tcp backend keyed on %q (HAProxy 3.0.0 refuses it):\n%s", c.Key, cfg)
			}
			for _, p := range c.Pools {
				wantCfg = append(wantCfg, "backend "+p.Backend+"\n    mode "+c.Mode+"\n")
				for _, s := range p.Servers {
					line := "    server " + s.Name + " " + s.Addr + " weight 0"
					if !c.NoHealthChecks {
						line += " check"
					}
					wantCfg = append(wantCfg, line+"\n")
					if static {
						wantCfg = append(wantCfg, "    use-server "+s.Name+" if { var(txn.stickyseat.server) -m str "+s.Name+" }\n")
					}
				}
				if len(c.Pools) > 1 {
					wantCfg = append(wantCfg, " set-var(txn.stickyseat_pool) str("+p.Name+")\n")
				}
			}
			wantCfg = append(wantCfg,
				"frontend stickyseat_in\n    mode "+c.Mode+"\n    bind "+c.FrontendBind+"\n",
				"    default_backend "+c.Pools[0].Backend+"\n",
				"    filter spoe engine stickyseat config "+c.SPOEPath+"\n",
				"    server agent1 "+c.AgentAddr+"\n",
			)
			if c.Mode == ModeTCP {
				wantCfg = append(wantCfg, "send-spoe-group stickyseat stickyseat if { "+c.Key+" -m found }\n")
			}
			for _, w := range wantCfg {
				if !strings.Contains(string(cfg), w) {
					t.Errorf("Render() cfg lacks %q; got:\n%s", w, cfg)
				}
			}
			wantArgs := "    args " + tc.args + "\n"
			if !c.NoHealthChecks {
				// With checks, one health argument per server follows the contract's arguments.
				var up strings.Builder
				for _, p := range c.withDefaults().Pools {
					for _, srv := range p.Servers {
						fmt.Fprintf(&up, " up:%s:%s=srv_is_up(%s/%s)", p.Name, srv.Name, p.Backend, srv.Name)
					}
				}
				wantArgs = "    args " + tc.args + up.String() + "\n"
			}
			for _, w := range append(spoeContract, wantArgs) {
				if !strings.Contains(string(spoe), w) {
					t.Errorf("Render() spoe lacks %q; got:\n%s", w, spoe)
				}
			}
			checkTableLines(t, c, string(cfg))
			if got, want := strings.Count(string(cfg), "filter spoe "), len(c.Pools); got != want {
				t.Errorf("Render() cfg has %d filter lines; want %d (one per pool backend)", got, want)
			}
			// Only pools with a line answer queued users; the others stay as they were.
			queues, vars := 0, "    register-var-names status server error\n"
			for _, p := range c.Pools {
				if p.Queue {
					queues++
					vars = "    register-var-names status server error position wait\n"
				}
			}
			if !strings.Contains(string(spoe), vars) {
				t.Errorf("Render() spoe lacks %q; got:\n%s", vars, spoe)
			}
			wantQueued := 0
			if c.Mode == ModeHTTP {
				wantQueued = queues
			}
			if got := strings.Count(string(cfg), "acl stickyseat_queued var(txn.stickyseat.status) -m str queued\n"); got != wantQueued {
				t.Errorf("Render() cfg answers queued users in %d backends; want %d", got, wantQueued)
			}
		})
	}
}

// TestRenderCitesNoTeamDocument: a generated file must explain itself; users have neither
// the team's design notes nor its issue tracker.
func TestRenderCitesNoTeamDocument(t *testing.T) {
	cite := regexp.MustCompile(`DESIGN\.md|[Ii]ssue [0-9]`)
	for _, tc := range renderCases() {
		cfg, spoe, err := Render(tc.c)
		if err != nil {
			t.Fatalf("%s: Render() error: %v", tc.name, err)
		}
		standalone, err := RenderStandalone(tc.c, Globals{LogStdout: true})
		if err != nil {
			t.Fatalf("%s: RenderStandalone() error: %v", tc.name, err)
		}
		for _, f := range [][]byte{cfg, spoe, standalone} {
			if m := cite.Find(f); m != nil {
				t.Errorf("%s: a generated file cites %q instead of giving the reason:\n%s", tc.name, m, f)
			}
		}
	}
}

func TestRenderDerivedValues(t *testing.T) {
	tests := []struct {
		name string
		c    func() Config
		want []string
	}{
		{"whole-second timeouts", func() Config {
			c := validConfig()
			c.ProcessingTimeout = 2 * time.Second
			return c
		}, []string{"tcp-request inspect-delay 7s\n", "timeout processing 2s\n", "timeout connect 500ms\n"}},
		{"millisecond timeouts", func() Config {
			c := validConfig()
			c.ProcessingTimeout = 250 * time.Millisecond
			return c
		}, []string{"tcp-request inspect-delay 5250ms\n", "timeout processing 250ms\n", "timeout connect 63ms\n"}},
		{"retry-after rounds up", func() Config {
			c := validConfig()
			c.Mode, c.RetryAfter = ModeHTTP, 1500*time.Millisecond
			return c
		}, []string{"hdr Retry-After 2 if"}},
		{"default spoe path", validConfig, []string{"config /etc/haproxy/stickyseat.spoe.conf\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, spoe, err := Render(tt.c())
			if err != nil {
				t.Fatalf("Render() error: %v", err)
			}
			both := string(cfg) + string(spoe)
			for _, w := range tt.want {
				if !strings.Contains(both, w) {
					t.Errorf("Render() lacks %q; got:\n%s", w, both)
				}
			}
		})
	}
}

func TestRenderRejectsInvalid(t *testing.T) {
	c := validConfig()
	c.Mode = "udp"
	if _, _, err := Render(c); err == nil || err.Error() != `invalid config: Mode "udp": want "tcp" or "http"` {
		t.Errorf("Render(mode udp) error = %v; want the validation error", err)
	}
	if _, err := RenderStandalone(validConfig(), Globals{StatsSocket: "a b"}); err == nil {
		t.Errorf("RenderStandalone(bad stats socket) error = nil; want an error")
	}
}

// TestHAProxyAcceptsRenders is the check that matters most: every rendered config, written
// out as a standalone haproxy.cfg with its SPOE file, passes the real `haproxy -c` without a
// warning, on every binary in HAPROXY_BINS.
func TestHAProxyAcceptsRenders(t *testing.T) {
	bins := haproxyBins(t)
	for _, tc := range renderCases() {
		t.Run(tc.name, func(t *testing.T) {
			for _, g := range []struct {
				name string
				g    Globals
			}{
				{"logs", Globals{LogStdout: true, StatsSocket: "/run/stickyseat-test/admin.sock"}}, // -c does not bind
				{"bare", Globals{}},
			} {
				t.Run(g.name, func(t *testing.T) {
					dir := t.TempDir()
					c := tc.c
					c.SPOEPath = filepath.Join(dir, "stickyseat.spoe.conf")
					writeRender(t, dir, c, g.g)
					for _, bin := range bins {
						t.Run(binName(bin), func(t *testing.T) { checkConfig(t, bin, dir, "haproxy.cfg") })
					}
				})
			}
		})
	}
}

// writeRender writes the standalone haproxy.cfg into dir and the SPOE file at c.SPOEPath
// (relative paths taken from dir).
func writeRender(t *testing.T, dir string, c Config, g Globals) {
	t.Helper()
	cfg, err := RenderStandalone(c, g)
	if err != nil {
		t.Fatalf("RenderStandalone() error: %v", err)
	}
	_, spoe, err := Render(c)
	if err != nil {
		t.Fatalf("Render() error: %v", err)
	}
	spoePath := c.SPOEPath
	if !filepath.IsAbs(spoePath) {
		spoePath = filepath.Join(dir, spoePath)
	}
	if err := os.WriteFile(filepath.Join(dir, "haproxy.cfg"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spoePath, spoe, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkTableLines checks each pool backend's stick table and the fast path's rules: one
// table per backend whatever is on, merged when both are.
func checkTableLines(t *testing.T, c Config, cfg string) {
	t.Helper()
	rule := "http-request"
	if c.Mode == ModeTCP {
		rule = "tcp-request content"
	}
	wantTables := 0
	if c.TrackConnections || c.FastPath {
		wantTables = len(c.Pools)
	}
	if got := strings.Count(cfg, "    stick-table "); got != wantTables {
		t.Errorf("Render() cfg has %d stick tables; want %d", got, wantTables)
	}
	table := "    stick-table type string len 256 size 1m expire "
	switch {
	case c.FastPath && c.TrackConnections:
		table += formatTimeout(c.FastPathWindow) + " store conn_cur\n"
	case c.FastPath:
		table += formatTimeout(c.FastPathWindow) + "\n"
	case c.TrackConnections:
		table += "10m store conn_cur\n"
	}
	var want, unwanted []string
	fast := []string{
		"    stick match " + c.Key + " if { var(txn.stickyseat_known) -m int gt 0 }\n",
		"    stick store-request " + c.Key + " if { var(txn.stickyseat.server) -m found } { " + c.Key + ",length -m int 1:255 }\n",
	}
	if wantTables > 0 {
		want = append(want, table)
	}
	if c.TrackConnections {
		want = append(want, "    "+rule+" track-sc1 "+c.Key+"\n")
	}
	if c.FastPath {
		want = append(want, fast...)
		for _, p := range c.Pools {
			want = append(want, "    "+rule+" set-var(txn.stickyseat_known) "+c.Key+",table_server_id("+p.Backend+") if { "+c.Key+",length -m int 1:255 }\n")
		}
	} else {
		unwanted = append(unwanted, fast...)
		unwanted = append(unwanted, "txn.stickyseat_known")
	}
	for _, w := range want {
		if got := strings.Count(cfg, w); got != len(c.Pools) && !strings.Contains(w, "table_server_id(") || got == 0 {
			t.Errorf("Render() cfg has %q %d times; want once per pool backend:\n%s", w, got, cfg)
		}
	}
	for _, u := range unwanted {
		if strings.Contains(cfg, u) {
			t.Errorf("Render() cfg has %q without the fast path:\n%s", u, cfg)
		}
	}
}
