package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/loadgen"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "put SPOP load on an agent the way HAProxy does and print decisions/s, latency and statuses (like redis-benchmark)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:12345", Usage: "the agent's SPOP address"},
			&cli.IntFlag{Name: "users", Value: 1000, Usage: "distinct user keys"},
			&cli.StringFlag{Name: "dist", Value: "uniform", Usage: "which user each request carries: uniform, zipf, or seq (0, 1, ... users-1, wrapping)"},
			&cli.Float64Flag{Name: "zipf-s", Value: 1.1, Usage: "Zipf exponent for --dist zipf (above 1)"},
			&cli.Float64Flag{Name: "new-ratio", Usage: "fraction of requests (0..1) carrying a user never seen before"},
			&cli.IntFlag{Name: "connections", Value: 4, Usage: "SPOP connections"},
			&cli.IntFlag{Name: "pipeline", Value: 20, Usage: "NOTIFY frames in flight per connection (HAProxy's max-waiting-frames)"},
			&cli.StringFlag{Name: "duration", Value: "10s", Usage: "how long to send (0: until --requests)"},
			&cli.Uint64Flag{Name: "requests", Usage: "stop after this many decisions (0: until --duration)"},
			&cli.Float64Flag{Name: "rate", Usage: "pace the load at this many decisions/s in total (0: as fast as answers return); latency counts from the write of each NOTIFY"},
			&cli.StringFlag{Name: "pool", Usage: "send pool=<name> with each message"},
			&cli.StringFlag{Name: "key-prefix", Value: "user-", Usage: "prefix of every user key"},
			&cli.BoolFlag{Name: "prefill", Usage: "first send every one of --users once, unmeasured, so that --users seats are live"},
			&cli.StringFlag{Name: "timeout", Value: "2s", Usage: "longest an answer may take before the run fails"},
			&cli.StringFlag{Name: "when-full", Usage: "what the agent's pool does with a user who finds no seat: queue (a full answer fails the run) or reject (a queued answer fails it); unset accepts both"},
			&cli.IntFlag{Name: "pid", Usage: "the agent's process id: also print its CPU time per 1k decisions (from /proc)"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of text"},
		},
		Action: bench,
	}
}

// benchConfig is a bench run, validated.
type benchConfig struct {
	Load    loadgen.Options
	Prefill bool
	PID     int
	JSON    bool
}

func benchConfigFromFlags(c *cli.Context) (benchConfig, error) {
	cfg := benchConfig{Prefill: c.Bool("prefill"), PID: c.Int("pid"), JSON: c.Bool("json")}
	o := &cfg.Load
	o.Addr = c.String("addr")
	if o.Users = c.Int("users"); o.Users <= 0 {
		return cfg, fmt.Errorf("--users: must be positive, got %d", o.Users)
	}
	dist, err := loadgen.ParseDist(c.String("dist"))
	if err != nil {
		return cfg, fmt.Errorf("--dist: %w", err)
	}
	o.Dist, o.ZipfS, o.NewRatio = dist, c.Float64("zipf-s"), c.Float64("new-ratio")
	if o.Connections = c.Int("connections"); o.Connections <= 0 {
		return cfg, fmt.Errorf("--connections: must be positive, got %d", o.Connections)
	}
	if o.Pipeline = c.Int("pipeline"); o.Pipeline <= 0 {
		return cfg, fmt.Errorf("--pipeline: must be positive, got %d", o.Pipeline)
	}
	if o.Duration, err = time.ParseDuration(c.String("duration")); err != nil || o.Duration < 0 {
		return cfg, fmt.Errorf("--duration: %q is not a duration of 0 or more (e.g. 10s)", c.String("duration"))
	}
	o.Requests, o.Rate, o.Pool = c.Uint64("requests"), c.Float64("rate"), c.String("pool")
	if o.KeyPrefix = c.String("key-prefix"); o.KeyPrefix == "" {
		return cfg, errors.New("--key-prefix: must not be empty")
	}
	if o.Timeout, err = parseDuration(c.String("timeout")); err != nil {
		return cfg, fmt.Errorf("--timeout: %w", err)
	}
	if c.IsSet("when-full") {
		w, err := assign.ParseWhenFull(c.String("when-full"))
		if err != nil || c.String("when-full") == "" {
			return cfg, fmt.Errorf("--when-full: %q: want reject or queue", c.String("when-full"))
		}
		o.WhenFull = &w
	}
	if err := o.Validate(); err != nil {
		return cfg, fmt.Errorf("bench: %w", err)
	}
	return cfg, nil
}

// benchReport is the --json output.
type benchReport struct {
	Addr           string             `json:"addr"`
	Decisions      uint64             `json:"decisions"`
	Seconds        float64            `json:"seconds"`
	Rate           float64            `json:"decisions_per_second"`
	LatencyMicros  map[string]float64 `json:"latency_us"`
	Statuses       map[string]uint64  `json:"statuses"`
	ProtocolErrors uint64             `json:"protocol_errors"`
	MaxPlace       int                `json:"max_place,omitempty"`
	Error          string             `json:"error,omitempty"`
	PrefillRate    float64            `json:"prefill_decisions_per_second,omitempty"`
	AgentCPUPer1k  float64            `json:"agent_cpu_seconds_per_1k,omitempty"`
}

func bench(c *cli.Context) error {
	cfg, err := benchConfigFromFlags(c)
	if err != nil {
		return err
	}
	out := c.App.Writer
	rep := benchReport{Addr: cfg.Load.Addr}
	if cfg.Prefill {
		p := cfg.Load
		p.Dist, p.NewRatio, p.Rate, p.Duration, p.Requests = loadgen.Sequential, 0, 0, 0, uint64(p.Users)
		res, err := loadgen.Run(c.Context, p)
		if err != nil {
			return fmt.Errorf("prefill: %w", err)
		}
		rep.PrefillRate = res.Rate()
		if !cfg.JSON {
			fmt.Fprintf(out, "prefill: %d users sent once in %s (%.0f decisions/s): %s\n", p.Users,
				res.Elapsed.Round(time.Millisecond), res.Rate(), statusList(res))
		}
	}
	var cpu0 time.Duration
	if cfg.PID > 0 {
		if cpu0, err = loadgen.ProcessCPU(cfg.PID); err != nil {
			return fmt.Errorf("--pid: %w", err)
		}
	}
	res, runErr := loadgen.Run(c.Context, cfg.Load)
	if res == nil {
		return runErr
	}
	if cfg.PID > 0 && res.Decisions > 0 {
		cpu1, err := loadgen.ProcessCPU(cfg.PID)
		if err != nil {
			return fmt.Errorf("--pid: %w", err)
		}
		rep.AgentCPUPer1k = (cpu1 - cpu0).Seconds() / float64(res.Decisions) * 1000
	}
	if cfg.JSON {
		rep.Decisions, rep.Seconds, rep.Rate = res.Decisions, res.Elapsed.Seconds(), res.Rate()
		rep.Statuses, rep.ProtocolErrors, rep.MaxPlace = res.Statuses, res.ProtocolErrors, res.MaxPlace
		rep.LatencyMicros = map[string]float64{"max": float64(res.Latency.Max()) / 1e3}
		for _, q := range loadgen.Quantiles {
			rep.LatencyMicros[q.Name] = float64(res.Latency.Quantile(q.Q)) / 1e3
		}
		if runErr != nil {
			rep.Error = runErr.Error()
		}
		enc := json.NewEncoder(out)
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		if err := res.WriteReport(out); err != nil {
			return err
		}
		if cfg.PID > 0 {
			fmt.Fprintf(out, "  agent (pid %d) CPU: %.4f s per 1k decisions\n", cfg.PID, rep.AgentCPUPer1k)
		}
	}
	return runErr
}

func statusList(res *loadgen.Result) string {
	s := ""
	for i, name := range res.StatusNames() {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%s=%d", name, res.Statuses[name])
	}
	return s
}
