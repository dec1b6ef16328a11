package haproxy

import (
	"testing"
	"time"
)

// validConfig is a minimal valid config the tests change one field at a time.
func validConfig() Config {
	return Config{
		Mode:         ModeTCP,
		FrontendBind: "127.0.0.1:8080",
		AgentAddr:    "127.0.0.1:12345",
		Pools: []Pool{{
			Name:    "web",
			Servers: []Server{{Name: "s1", Addr: "127.0.0.1:9001"}, {Name: "s2", Addr: "127.0.0.1:9002"}},
		}},
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   string // "" for valid
	}{
		{"valid tcp", func(c *Config) {}, ""},
		{"valid http", func(c *Config) { c.Mode = ModeHTTP }, ""},
		{"valid any-address binds", func(c *Config) { c.FrontendBind = "*:80" }, ""},
		{"valid empty bind host", func(c *Config) { c.FrontendBind = ":80" }, ""},
		{"valid ipv6", func(c *Config) { c.FrontendBind = "[::1]:80"; c.AgentAddr = "[::1]:12345" }, ""},
		{"valid hostname", func(c *Config) { c.Pools[0].Servers[0].Addr = "app-1.internal:8080" }, ""},
		{"valid several pools", func(c *Config) {
			c.Pools = append(c.Pools, Pool{Name: "api", Servers: []Server{{Name: "s1", Addr: "10.0.0.1:80"}}})
		}, ""},
		{"empty mode", func(c *Config) { c.Mode = "" }, `Mode "": want "tcp" or "http"`},
		{"bad mode", func(c *Config) { c.Mode = "udp" }, `Mode "udp": want "tcp" or "http"`},
		{"bind without port", func(c *Config) { c.FrontendBind = "127.0.0.1" }, `FrontendBind "127.0.0.1": want host:port`},
		{"bind port zero", func(c *Config) { c.FrontendBind = "127.0.0.1:0" }, `FrontendBind "127.0.0.1:0": port "0": want 1 to 65535`},
		{"bind named port", func(c *Config) { c.FrontendBind = "127.0.0.1:http" }, `FrontendBind "127.0.0.1:http": port "http": want 1 to 65535`},
		{"agent missing", func(c *Config) { c.AgentAddr = "" }, `AgentAddr "": want host:port`},
		{"agent any host", func(c *Config) { c.AgentAddr = "*:12345" }, `AgentAddr "*:12345": host must not be empty`},
		{"agent host with space", func(c *Config) { c.AgentAddr = "a b:1" }, `AgentAddr "a b:1": host "a b": unexpected character`},
		{"spoe path with space", func(c *Config) { c.SPOEPath = "/etc/my haproxy/s.conf" }, `SPOEPath "/etc/my haproxy/s.conf": must not contain spaces, control characters, quotes, '#' or '\'`},
		{"key with space", func(c *Config) { c.Key = "req.hdr(x-user) src" }, `Key "req.hdr(x-user) src": must be one word: no spaces, control characters, double or unpaired single quotes, '#' or '\'`},
		{"body in tcp mode", func(c *Config) { c.SendBody = true }, `SendBody: http mode only (req.body needs HTTP parsing)`},
		{"valid fast path", func(c *Config) { c.FastPath, c.TrackConnections = true, true }, ""},
		{"fast path with the key in the body", func(c *Config) { c.Mode, c.SendBody, c.FastPath = ModeHTTP, true, true },
			`FastPath: needs a Key HAProxy can fetch (a key the agent takes from the body cannot be looked up by HAProxy)`},
		{"fast path window too short", func(c *Config) { c.FastPath, c.FastPathWindow = true, time.Microsecond }, `FastPathWindow 1µs: want at least 1ms`},
		{"processing timeout too short", func(c *Config) { c.ProcessingTimeout = time.Microsecond }, `ProcessingTimeout 1µs: want at least 1ms`},
		{"negative retry-after", func(c *Config) { c.RetryAfter = -time.Second }, `RetryAfter -1s: must not be negative`},
		{"no pools", func(c *Config) { c.Pools = nil }, `Pools: want at least one pool`},
		{"pool without name", func(c *Config) { c.Pools[0].Name = "" }, `Pools[0].Name "": must not be empty`},
		{"pool name with paren", func(c *Config) { c.Pools[0].Name = "we)b" }, `Pools[0].Name "we)b": character ')' not allowed: use letters, digits, '_', '-' and '.'`},
		{"bad explicit backend", func(c *Config) { c.Pools[0].Backend = "be web" }, `Pools[0].Backend "be web": character ' ' not allowed: use letters, digits, '_', '-' and '.'`},
		{"duplicate pools", func(c *Config) { c.Pools = append(c.Pools, c.Pools[0]) }, "Pools[1].Name \"web\": already used by Pools[0]\nPools[1].Backend \"stickyseat_web\": already used by Pools[0]"},
		{"backend named like the agent backend", func(c *Config) { c.Pools[0].Backend = AgentBackend }, `Pools[0].Backend "stickyseat_agent": already used by the agent backend`},
		{"backend named like the frontend", func(c *Config) { c.Pools[0].Name = "in" }, `Pools[0].Backend "stickyseat_in": already used by the frontend`},
		{"no servers", func(c *Config) { c.Pools[0].Servers = nil }, `Pools[0].Servers: want at least one server`},
		{"server without name", func(c *Config) { c.Pools[0].Servers[1].Name = "" }, `Pools[0].Servers[1].Name "": must not be empty`},
		{"server name with space", func(c *Config) { c.Pools[0].Servers[1].Name = "s 2" }, `Pools[0].Servers[1].Name "s 2": character ' ' not allowed: use letters, digits, '_', '-' and '.'`},
		{"duplicate servers", func(c *Config) { c.Pools[0].Servers[1].Name = "s1" }, `Pools[0].Servers[1].Name "s1": already used by Pools[0].Servers[0]`},
		{"server without address", func(c *Config) { c.Pools[0].Servers[0].Addr = "" }, `Pools[0].Servers[0].Addr "": want host:port`},
		{"server without port", func(c *Config) { c.Pools[0].Servers[0].Addr = "10.0.0.1:" }, `Pools[0].Servers[0].Addr "10.0.0.1:": port "": want 1 to 65535`},
		{"every problem reported", func(c *Config) { c.Mode = "x"; c.AgentAddr = "nope" }, "Mode \"x\": want \"tcp\" or \"http\"\nAgentAddr \"nope\": want host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(&c)
			err := c.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate() = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestGlobalsValidate(t *testing.T) {
	tests := []struct {
		g    Globals
		want string
	}{
		{Globals{}, ""},
		{Globals{StatsSocket: "/run/haproxy/admin.sock", LogStdout: true}, ""},
		{Globals{StatsSocket: "/run/my sock"}, `StatsSocket "/run/my sock": must not contain spaces, control characters, quotes, '#' or '\'`},
		{Globals{StatsSocket: "admin.sock"}, `StatsSocket "admin.sock": want an absolute path`},
	}
	for _, tt := range tests {
		err := tt.g.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%+v.Validate() = %q; want %q", tt.g, got, tt.want)
		}
	}
}
