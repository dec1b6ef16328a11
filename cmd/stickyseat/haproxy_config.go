package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/stickyseat/stickyseat/haproxy"
)

func haproxyConfigCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "mode", Value: "tcp", Usage: "tcp or http", EnvVars: []string{"STICKYSEAT_MODE"}},
		&cli.StringFlag{Name: "frontend-bind", Value: ":8080", Usage: "address the HAProxy frontend listens on", EnvVars: []string{"STICKYSEAT_FRONTEND_BIND"}},
		&cli.StringFlag{Name: "server-addr", Usage: "address of each server: s1=10.0.0.1:8080,s2=10.0.0.2:8080", EnvVars: []string{"STICKYSEAT_SERVER_ADDR"}},
		&cli.StringFlag{Name: "agent-addr", Value: "127.0.0.1:12345", Usage: "address of stickyseat serve (its --listen)", EnvVars: []string{"STICKYSEAT_AGENT_ADDR"}},
		&cli.StringFlag{Name: "key", Usage: "where the user key comes from: header:NAME, cookie:NAME, param:NAME, body (agent extracts it; see serve --key-from-body) or any HAProxy sample (default src in tcp mode, header:x-user in http mode)", EnvVars: []string{"STICKYSEAT_KEY"}},
		&cli.StringFlag{Name: "key-fallback", Usage: "src: also send the client address, for serve --key-fallback src", EnvVars: []string{"STICKYSEAT_KEY_FALLBACK"}},
		&cli.BoolFlag{Name: "send-pool", Usage: "send pool=str(NAME) with the message", EnvVars: []string{"STICKYSEAT_SEND_POOL"}},
		&cli.StringFlag{Name: "spoe-path", Value: haproxy.DefaultSPOEPath, Usage: "path HAProxy reads the SPOE file from", EnvVars: []string{"STICKYSEAT_SPOE_PATH"}},
		&cli.StringFlag{Name: "processing-timeout", Value: "1s", Usage: "SPOE timeout processing (keep the agent's --decision-timeout below it)", EnvVars: []string{"STICKYSEAT_PROCESSING_TIMEOUT"}},
		&cli.BoolFlag{Name: "track-connections", Usage: "count each user's open connections in a stick table per backend, for serve --haproxy-socket (long streams keep their seat)", EnvVars: []string{"STICKYSEAT_TRACK_CONNECTIONS"}},
		&cli.BoolFlag{Name: "fast-path", Usage: "route users HAProxy sent to a server within --fast-path-window straight there, without asking the agent (a stick table per backend, kept in step with the seats by serve --haproxy-socket; not with a key taken from the body)", EnvVars: []string{"STICKYSEAT_FAST_PATH"}},
		&cli.StringFlag{Name: "fast-path-window", Value: "10s", Usage: "with --fast-path: how long after a user's last request HAProxy still routes them by itself; keep serve --keepalive-interval at most this", EnvVars: []string{"STICKYSEAT_FAST_PATH_WINDOW"}},
		&cli.StringFlag{Name: "stats-socket", Usage: "with --standalone: path of the admin runtime API socket to declare (what serve --haproxy-socket reads)", EnvVars: []string{"STICKYSEAT_STATS_SOCKET"}},
		&cli.BoolFlag{Name: "standalone", Usage: "emit a complete haproxy.cfg (global and defaults included)"},
		&cli.StringFlag{Name: "out-dir", Usage: "write haproxy.cfg and the SPOE file into this directory instead of printing them (the filter then names the SPOE file there, unless --spoe-path is given)"},
	}
	flags = append(flags, configFlag())
	flags = append(flags, poolFlags()...)
	return &cli.Command{
		Name:   "haproxy-config",
		Usage:  "print the haproxy.cfg part and the SPOE file for the agent's servers",
		Flags:  flags,
		Action: haproxyConfig,
	}
}

func haproxyConfigFromFlags(c *cli.Context) (haproxy.Config, error) {
	p, err := loadPools(c)
	if err != nil {
		return haproxy.Config{}, err
	}
	addrs := map[string]string{}
	if spec := c.String("server-addr"); spec != "" || c.String("config") == "" {
		if addrs, err = parseServerAddrs(spec); err != nil {
			return haproxy.Config{}, fmt.Errorf("--server-addr: %w", err)
		}
	}
	used := map[string]bool{}
	for i := range p.HAProxy {
		hp := &p.HAProxy[i]
		for j := range hp.Servers {
			srv := &hp.Servers[j]
			if addr, ok := addrs[srv.Name]; ok {
				srv.Addr, used[srv.Name] = addr, true
			}
			if srv.Addr == "" {
				return haproxy.Config{}, fmt.Errorf("--server-addr: no address for server %q of pool %q", srv.Name, hp.Name)
			}
		}
	}
	for name := range addrs {
		if !used[name] {
			return haproxy.Config{}, fmt.Errorf("--server-addr: server %q is in no pool", name)
		}
	}
	body, src := false, c.String("key-fallback") == "src"
	for _, r := range p.KeyRules {
		body = body || r.FromBody != nil
		src = src || r.Fallback == "src"
	}
	pt, err := parseDuration(c.String("processing-timeout"))
	if err != nil {
		return haproxy.Config{}, fmt.Errorf("--processing-timeout: %w", err)
	}
	window, err := parseDuration(c.String("fast-path-window"))
	if err != nil {
		return haproxy.Config{}, fmt.Errorf("--fast-path-window: %w", err)
	}
	mode := c.String("mode")
	if mode != haproxy.ModeTCP && mode != haproxy.ModeHTTP {
		return haproxy.Config{}, fmt.Errorf("--mode: %q is not tcp or http", mode)
	}
	var sample string
	if spec := c.String("key"); spec != "" {
		var keyBody bool
		if sample, keyBody, err = haproxy.KeySpec(spec); err != nil {
			return haproxy.Config{}, fmt.Errorf("--key: %w", err)
		}
		body = body || keyBody
	}
	if c.Bool("fast-path") && sample == "" && body {
		return haproxy.Config{}, fmt.Errorf("--fast-path: the key is taken from the body by the agent, and HAProxy can only route by itself on a key it reads (use --key header:NAME, cookie:NAME, param:NAME or a sample)")
	}
	if body && mode != haproxy.ModeHTTP {
		return haproxy.Config{}, fmt.Errorf("--key: body needs --mode http (HAProxy parses bodies in http mode only)")
	}
	spoePath := c.String("spoe-path")
	if dir := c.String("out-dir"); dir != "" && !c.IsSet("spoe-path") {
		// The SPOE file is written beside haproxy.cfg: point the filter at it.
		abs, err := filepath.Abs(filepath.Join(dir, filepath.Base(spoePath)))
		if err != nil {
			return haproxy.Config{}, fmt.Errorf("--out-dir: %w", err)
		}
		spoePath = abs
	}
	switch c.String("key-fallback") {
	case "", "src":
	default:
		return haproxy.Config{}, fmt.Errorf("--key-fallback: unknown key fallback %q (want src or nothing)", c.String("key-fallback"))
	}
	cfg := haproxy.Config{
		Mode:              mode,
		FrontendBind:      c.String("frontend-bind"),
		AgentAddr:         c.String("agent-addr"),
		SPOEPath:          spoePath,
		Key:               sample,
		SendBody:          body,
		SendSrc:           src,
		TrackConnections:  c.Bool("track-connections"),
		FastPath:          c.Bool("fast-path"),
		FastPathWindow:    window,
		SendPool:          c.Bool("send-pool"),
		Pools:             p.HAProxy,
		ProcessingTimeout: pt,
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// parseServerAddrs reads "s1=host:port,s2=host:port".
func parseServerAddrs(spec string) (map[string]string, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, fmt.Errorf("no server addresses given (e.g. --server-addr s1=10.0.0.1:8080,s2=10.0.0.2:8080)")
	}
	out := map[string]string{}
	for _, item := range strings.Split(spec, ",") {
		name, addr, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok || name == "" || addr == "" {
			return nil, fmt.Errorf("%q is not name=host:port", item)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("duplicate server %q", name)
		}
		out[name] = addr
	}
	return out, nil
}

func haproxyConfig(c *cli.Context) error {
	cfg, err := haproxyConfigFromFlags(c)
	if err != nil {
		return err
	}
	var main []byte
	if c.Bool("standalone") {
		main, err = haproxy.RenderStandalone(cfg, haproxy.Globals{LogStdout: true, StatsSocket: c.String("stats-socket")})
	} else {
		main, _, err = haproxy.Render(cfg)
	}
	if err != nil {
		return err
	}
	_, spoe, err := haproxy.Render(cfg)
	if err != nil {
		return err
	}
	if dir := c.String("out-dir"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("--out-dir: %w", err)
		}
		spoeName := filepath.Base(cfg.SPOEPath)
		for name, data := range map[string][]byte{"haproxy.cfg": main, spoeName: spoe} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				return fmt.Errorf("--out-dir: %w", err)
			}
		}
		fmt.Fprintf(c.App.Writer, "wrote %s and %s\n", filepath.Join(dir, "haproxy.cfg"), filepath.Join(dir, spoeName))
		return nil
	}
	fmt.Fprintf(c.App.Writer, "%s\n# ---- SPOE file: save as %s ----\n%s", main, cfg.SPOEPath, spoe)
	return nil
}
