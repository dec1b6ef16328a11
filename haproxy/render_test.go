package haproxy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// contractLines must appear, verbatim, in every render of the given mode (DESIGN.md, "The
// contract with HAProxy").
var contractLines = map[string]struct{ cfg, spoe []string }{
	ModeTCP: {
		cfg: []string{
			"    tcp-request inspect-delay ",
			"    tcp-request content send-spoe-group stickyseat stickyseat if { ",
			"    tcp-request content reject unless { var(txn.stickyseat.server) -m found }\n",
			"    use-server %[var(txn.stickyseat.server)] if { var(txn.stickyseat.server) -m found }\n",
			"backend stickyseat_agent\n    mode tcp\n",
			"    timeout connect 5s\n",
			"    timeout server 3m\n",
		},
	},
	ModeHTTP: {
		cfg: []string{
			"    http-request send-spoe-group stickyseat stickyseat\n",
			`    http-request return status 400 content-type text/plain string "stickyseat: no user key in the request\n" if { var(txn.stickyseat.status) -m str invalid }` + "\n",
			`    http-request return status 503 content-type text/plain string "stickyseat: every server is full, retry later\n" hdr Retry-After 30 if { var(txn.stickyseat.status) -m str full }` + "\n",
			`    http-request return status 503 content-type text/plain string "stickyseat: seat service unavailable\n" unless { var(txn.stickyseat.server) -m found }` + "\n",
			"    use-server %[var(txn.stickyseat.server)] if { var(txn.stickyseat.server) -m found }\n",
			"backend stickyseat_agent\n    mode tcp\n",
		},
	},
}

var spoeContract = []string{
	"[stickyseat]\n",
	"spoe-agent stickyseat\n",
	"    groups stickyseat\n",
	"    option var-prefix stickyseat\n",
	"    option set-on-error error\n",
	"    register-var-names status server error\n",
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

func renderCases() []renderCase {
	var cases []renderCase
	for _, mode := range []string{ModeTCP, ModeHTTP} {
		for _, key := range []string{"src", "req.hdr(x-user)", "req.cook(sid)"} {
			for _, pool := range []bool{false, true} {
				c := validConfig()
				c.Mode, c.Key, c.SendPool = mode, key, pool
				args := "key=" + key
				name := mode + "/" + key
				if pool {
					args += " pool=str(web)"
					name += "/pool"
				}
				cases = append(cases, renderCase{name, c, args})
			}
		}
	}

	pools := func(mode string) Config {
		c := validConfig()
		c.Mode = mode
		c.Pools = append(c.Pools, Pool{Name: "api", Backend: "be_api", Servers: []Server{{Name: "a1", Addr: "[::1]:9101"}}})
		return c
	}
	tcpPools, httpPools := pools(ModeTCP), pools(ModeHTTP)
	httpPools.Key = "req.cook(sid),lower"
	cases = append(cases,
		renderCase{"tcp/several pools", tcpPools, "key=src pool=var(txn.stickyseat_pool)"},
		renderCase{"http/several pools", httpPools, "key=req.cook(sid),lower pool=var(txn.stickyseat_pool)"},
	)

	body := validConfig()
	body.Mode, body.SendPool, body.SendBody, body.Key = ModeHTTP, true, true, DefaultKeyHTTP
	cases = append(cases, renderCase{"http/body", body, "key=req.hdr(x-user) pool=str(web) body=req.body"})

	trackTCP := validConfig()
	trackTCP.TrackConnections = true
	cases = append(cases, renderCase{"tcp/track connections", trackTCP, "key=src"})
	trackHTTP := validConfig()
	trackHTTP.Mode, trackHTTP.TrackConnections = ModeHTTP, true
	cases = append(cases, renderCase{"http/track connections", trackHTTP, "key=req.hdr(x-user)"})

	bodyOnly := validConfig()
	bodyOnly.Mode, bodyOnly.SendBody, bodyOnly.SendSrc = ModeHTTP, true, true
	cases = append(cases, renderCase{"http/body key with src fallback", bodyOnly, "body=req.body src=src"})

	noChecks := validConfig()
	noChecks.NoHealthChecks, noChecks.FrontendBind, noChecks.RetryAfter = true, "*:8080", 1500*time.Millisecond
	cases = append(cases, renderCase{"tcp/no checks", noChecks, "key=src"})
	return cases
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
			for _, p := range c.Pools {
				wantCfg = append(wantCfg, "backend "+p.Backend+"\n    mode "+c.Mode+"\n")
				for _, s := range p.Servers {
					line := "    server " + s.Name + " " + s.Addr + " weight 0"
					if !c.NoHealthChecks {
						line += " check"
					}
					wantCfg = append(wantCfg, line+"\n")
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
			if got, want := strings.Count(string(cfg), "filter spoe "), len(c.Pools); got != want {
				t.Errorf("Render() cfg has %d filter lines; want %d (one per pool backend)", got, want)
			}
		})
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
		}, []string{"tcp-request inspect-delay 7s\n", "timeout processing 2s\n"}},
		{"millisecond timeouts", func() Config {
			c := validConfig()
			c.ProcessingTimeout = 250 * time.Millisecond
			return c
		}, []string{"tcp-request inspect-delay 5250ms\n", "timeout processing 250ms\n"}},
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
