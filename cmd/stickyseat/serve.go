package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/signal"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/stickyseat/stickyseat/admin"
	"github.com/stickyseat/stickyseat/agent"
	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/metrics"
)

func serveCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "listen", Value: "127.0.0.1:12345", Usage: "SPOP address HAProxy connects to (loopback by default: the agent trusts its peers)", EnvVars: []string{"STICKYSEAT_LISTEN"}},
		&cli.DurationFlag{Name: "decision-timeout", Value: 500 * time.Millisecond, Usage: "deadline of one decision; keep it below the SPOE timeout processing", EnvVars: []string{"STICKYSEAT_DECISION_TIMEOUT"}},
		&cli.BoolFlag{Name: "watch-config", Usage: "reload --config when the file changes (SIGHUP always reloads it)", EnvVars: []string{"STICKYSEAT_WATCH_CONFIG"}},
		&cli.StringFlag{Name: "key-from-body", Usage: "take the key from the body argument when key= is absent or empty: xml:<element>, json:<path> or regex:<expr>", EnvVars: []string{"STICKYSEAT_KEY_FROM_BODY"}},
		&cli.StringFlag{Name: "key-fallback", Usage: "when no key is found: src uses the client address (the message must send src=src); empty answers invalid", EnvVars: []string{"STICKYSEAT_KEY_FALLBACK"}},
		&cli.StringFlag{Name: "haproxy-socket", Usage: "this node's HAProxy runtime API (stats socket path or host:port), with haproxy-config --track-connections or --fast-path: seats of users with an open connection, or routed by HAProxy itself, are kept alive, and HAProxy forgets users whose seat is gone or elsewhere", EnvVars: []string{"STICKYSEAT_HAPROXY_SOCKET"}},
		&cli.DurationFlag{Name: "keepalive-interval", Value: 10 * time.Second, Usage: "how often --haproxy-socket is read; keep it well below --idle-timeout, and at most haproxy-config --fast-path-window", EnvVars: []string{"STICKYSEAT_KEEPALIVE_INTERVAL"}},
		&cli.StringFlag{Name: "metrics-listen", Usage: "serve Prometheus metrics on this address at /metrics (default off)", EnvVars: []string{"STICKYSEAT_METRICS_LISTEN"}},
		&cli.BoolFlag{Name: "pprof", Usage: "also serve Go's profiles at /debug/pprof/ on --metrics-listen, which must then be a loopback address (for profiling; off by default)", EnvVars: []string{"STICKYSEAT_PPROF"}},
		&cli.StringFlag{Name: "admin-listen", Usage: "serve the status page and admin API on this address (default off; loopback unless --admin-token is set)", EnvVars: []string{"STICKYSEAT_ADMIN_LISTEN"}},
		&cli.StringFlag{Name: "admin-token", Usage: "token the admin API and page require (Authorization: Bearer, or the page's login form); required off loopback; prefer the env var or --admin-token-file (argv is readable by every local user)", EnvVars: []string{"STICKYSEAT_ADMIN_TOKEN"}},
		&cli.StringFlag{Name: "admin-token-file", Usage: "read --admin-token from this file (one line)", EnvVars: []string{"STICKYSEAT_ADMIN_TOKEN_FILE"}},
		&cli.StringSliceFlag{Name: "admin-allowed-host", Usage: "a Host name (or host:port) the admin API answers besides its listen address and loopback names, e.g. the name a proxy or operators use (repeatable; env: comma-separated)", EnvVars: []string{"STICKYSEAT_ADMIN_ALLOWED_HOST"}},
		&cli.IntFlag{Name: "max-connections", Value: 1024, Usage: "SPOP connections served at once; a newcomer past it closes the connection idle the longest, and is refused only when every one is busy (each HAProxy process opens a few per agent)", EnvVars: []string{"STICKYSEAT_MAX_CONNECTIONS"}},
		&cli.DurationFlag{Name: "hello-timeout", Value: 5 * time.Second, Usage: "close an SPOP connection that has not sent its HELLO this long after connecting, so silent peers cannot take every --max-connections slot (HAProxy sends its HELLO at once)", EnvVars: []string{"STICKYSEAT_HELLO_TIMEOUT"}},
		&cli.UintFlag{Name: "max-frame-size", Value: 1 << 20, Usage: "largest SPOP max-frame-size accepted from HAProxy (bytes)", EnvVars: []string{"STICKYSEAT_MAX_FRAME_SIZE"}},
	}
	flags = append(flags, configFlag())
	flags = append(flags, poolFlags()...)
	flags = append(flags, storeFlags()...)
	flags = append(flags, logFlags()...)
	return &cli.Command{
		Name:   "serve",
		Usage:  "run the SPOE agent",
		Flags:  flags,
		Action: serve,
	}
}

// serveConfig is everything serve needs, validated, with no flag left to read.
type serveConfig struct {
	Listen          string
	DecisionTimeout time.Duration
	MaxFrameSize    uint32
	MaxConnections  int
	HelloTimeout    time.Duration
	HAProxySocket   string
	MetricsListen   string
	PProf           bool
	AdminListen     string
	AdminToken      string
	AdminHosts      []string
	KeepAlive       time.Duration
	ConfigPath      string // --config; empty when the flags describe the pool
	WatchConfig     bool
	Pools           pools
	Store           storeConfig
}

func serveConfigFromFlags(c *cli.Context) (serveConfig, error) {
	var cfg serveConfig
	var err error
	if cfg.Pools, err = loadPools(c); err != nil {
		return cfg, err
	}
	cfg.Listen = c.String("listen")
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return cfg, fmt.Errorf("--listen: %q is not host:port", cfg.Listen)
	}
	if cfg.DecisionTimeout, err = positiveDuration(c, "decision-timeout"); err != nil {
		return cfg, err
	}
	if cfg.HelloTimeout, err = positiveDuration(c, "hello-timeout"); err != nil {
		return cfg, err
	}
	mfs := c.Uint("max-frame-size")
	if mfs < 256 || mfs > 1<<30 {
		return cfg, fmt.Errorf("--max-frame-size: %d is outside 256..1073741824", mfs)
	}
	cfg.MaxFrameSize = uint32(mfs)
	if cfg.MaxConnections = c.Int("max-connections"); cfg.MaxConnections <= 0 {
		return cfg, fmt.Errorf("--max-connections: must be positive, got %d", cfg.MaxConnections)
	}
	if cfg.Store, err = storeConfigFromFlags(c, cfg.DecisionTimeout); err != nil {
		return cfg, err
	}
	cfg.HAProxySocket = c.String("haproxy-socket")
	cfg.MetricsListen, cfg.AdminListen, cfg.AdminHosts = c.String("metrics-listen"), c.String("admin-listen"), c.StringSlice("admin-allowed-host")
	if cfg.AdminToken, err = adminToken(c); err != nil {
		return cfg, err
	}
	for _, f := range []struct{ flag, addr string }{{"metrics-listen", cfg.MetricsListen}, {"admin-listen", cfg.AdminListen}} {
		if f.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(f.addr); err != nil {
			return cfg, fmt.Errorf("--%s: %q is not host:port", f.flag, f.addr)
		}
	}
	if cfg.PProf = c.Bool("pprof"); cfg.PProf && cfg.MetricsListen == "" {
		return cfg, fmt.Errorf("--pprof: needs --metrics-listen")
	}
	if cfg.PProf && !isLoopback(cfg.MetricsListen) {
		// Profiles show the command line and memory and let anyone load the CPU: never off
		// this host.
		return cfg, fmt.Errorf("--pprof: --metrics-listen %s is not a loopback address; profiles are served on loopback only", cfg.MetricsListen)
	}
	if cfg.AdminListen != "" && cfg.AdminToken == "" && !isLoopback(cfg.AdminListen) {
		return cfg, fmt.Errorf("--admin-listen: %s is not a loopback address: set --admin-token", cfg.AdminListen)
	}
	if cfg.KeepAlive, err = positiveDuration(c, "keepalive-interval"); err != nil {
		return cfg, err
	}
	cfg.ConfigPath = c.String("config")
	if cfg.WatchConfig = c.Bool("watch-config"); cfg.WatchConfig && cfg.ConfigPath == "" {
		return cfg, fmt.Errorf("--watch-config: needs --config")
	}
	return cfg, nil // loadPools validated the pools
}

func serve(c *cli.Context) error {
	log, err := newLogger(c, c.App.ErrWriter)
	if err != nil {
		return err
	}
	warnSecretFileModes(c, log)
	cfg, err := serveConfigFromFlags(c)
	if err != nil {
		return err
	}
	st, err := openStore(c.Context, cfg.Store, log)
	if err != nil {
		return err
	}
	defer st.close()
	// Every goroutine serve starts runs under ctx and is waited for before serve returns
	// (deferred calls run last first: cancel, then wait, then the store closes), so nothing
	// of the agent outlives serve, whether it ends by the context or by an error.
	var background sync.WaitGroup
	defer background.Wait()
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	assigner, err := assign.New(cfg.Pools.Policy, st, assign.Options{})
	if err != nil {
		return err
	}
	adm := admin.New(cfg.Pools.Policy, assigner, st, st, admin.Options{Token: cfg.AdminToken, AllowedHosts: cfg.AdminHosts, Logger: log})
	if err := adm.Sync(ctx); err != nil {
		log.Warn().Err(err).Msg("cannot read run-time changes at start")
	}
	background.Go(func() { adm.Run(ctx, time.Second) })
	// Caught from here on: a SIGHUP sent once the agent says it started must reload, not kill it.
	hup := notifyReload()
	defer signal.Stop(hup)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	var a *agent.Agent
	m := metrics.New(metrics.Sources{Version: version, Agent: func() agent.Stats { return a.Stats() }, Pools: adm.Pools, Store: st.stats, DecisionTimeout: cfg.DecisionTimeout})
	a = agent.New(assigner, agent.Options{
		OnDecision:      m.ObserveDecision,
		DecisionTimeout: cfg.DecisionTimeout,
		MaxFrameSize:    cfg.MaxFrameSize,
		MaxConnections:  cfg.MaxConnections,
		HelloTimeout:    cfg.HelloTimeout,
		KeyRules:        cfg.Pools.KeyRules,
		Logger:          log,
	})
	tables := newTables(cfg.Pools)
	rl, err := newReloader(cfg.ConfigPath, cfg.WatchConfig, func() (pools, error) { return loadPools(c) }, func(p pools) error {
		if err := adm.SetBase(ctx, p.Policy); err != nil {
			return err
		}
		a.SetKeyRules(p.KeyRules)
		tables.set(p)
		return nil
	}, log)
	if err != nil {
		ln.Close() //nolint:errcheck // the watch error is the one to report
		return err
	}
	background.Go(func() { rl.Run(ctx, hup, cfg.Pools) })
	log.Info().Str("listen", ln.Addr().String()).Str("store", st.kind).Str("config", cfg.Pools.Source).
		Strs("pools", poolSummaries(cfg.Pools)).Str("version", version).
		Msg("stickyseat agent started")
	for _, h := range []struct {
		addr, what string
		handler    http.Handler
	}{{cfg.MetricsListen, "metrics", metricsMux(m, cfg.PProf, log)}, {cfg.AdminListen, "admin", adm.Handler()}} {
		run, err := listenHTTP(ctx, log, h.addr, h.what, h.handler)
		if err != nil {
			ln.Close() //nolint:errcheck // the listen error is the one to report
			return err
		}
		if run != nil {
			background.Go(run)
		}
	}
	if cfg.HAProxySocket != "" {
		background.Go(func() { keepAliveLoop(ctx, log, assigner, cfg.HAProxySocket, tables, cfg.KeepAlive) })
	}
	if err := a.Serve(ctx, ln); err != nil {
		return fmt.Errorf("serve %s: %w", cfg.Listen, err)
	}
	stats := a.Stats()
	log.Info().Uint64("connections", stats.Connections).Uint64("frames", stats.Frames).Msg("stickyseat agent stopped")
	return nil
}
