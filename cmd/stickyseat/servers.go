package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/stickyseat/stickyseat/assign"
)

// poolFlags are the flags that describe the one pool of a flag-configured agent; serve and
// haproxy-config share them so both sides agree on server names.
func poolFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "servers", Usage: "HAProxy server names, with an optional quota each: s1,s2,s3 or s1=4,s2=2,s3=2", EnvVars: []string{"STICKYSEAT_SERVERS"}},
		&cli.IntFlag{Name: "max-users", Value: 2, Usage: "quota (distinct users) of servers listed without one", EnvVars: []string{"STICKYSEAT_MAX_USERS"}},
		// A string, not a DurationFlag: its error for a value that is no duration at all says
		// what a duration looks like, as the tests pin (and as the file's idle-timeout does).
		&cli.StringFlag{Name: "idle-timeout", Value: "24h", Usage: "a seat is freed this long after its user's last request", EnvVars: []string{"STICKYSEAT_IDLE_TIMEOUT"}},
		&cli.DurationFlag{Name: "down-grace", Value: 10 * time.Second, Usage: "a server HAProxy reports down keeps its users (and takes no new ones) this long before they move", EnvVars: []string{"STICKYSEAT_DOWN_GRACE"}},
		&cli.StringFlag{Name: "down-policy", Value: "move", Usage: "after the grace, move a down server's users (move) or keep them waiting for it (keep)", EnvVars: []string{"STICKYSEAT_DOWN_POLICY"}},
		&cli.StringFlag{Name: "pool", Value: "default", Usage: "pool name (the message's pool= argument, when sent)", EnvVars: []string{"STICKYSEAT_POOL"}},
		&cli.StringFlag{Name: "when-full", Value: "reject", Usage: "when no seat is free: reject the user (full), or queue them in a first-come-first-served line (queued, with their place)", EnvVars: []string{"STICKYSEAT_WHEN_FULL"}},
		&cli.DurationFlag{Name: "queue-timeout", Value: assign.DefaultQueueTimeout, Usage: "with --when-full queue: a user keeps their place while they ask again within this", EnvVars: []string{"STICKYSEAT_QUEUE_TIMEOUT"}},
		&cli.IntFlag{Name: "queue-max", Value: assign.DefaultQueueMax, Usage: "with --when-full queue: most places in the line; newcomers past it get full", EnvVars: []string{"STICKYSEAT_QUEUE_MAX"}},
		maxSeatsFlag(),
	}
}

// maxSeatsFlag bounds every pool, whether from the flags or --config; check-config takes it
// too, so a file it passes is one serve accepts.
func maxSeatsFlag() *cli.IntFlag {
	return &cli.IntFlag{Name: "max-seats", Value: 5_000_000, Usage: "most seats one pool may hold: its servers' quotas may not add up to more (bounds memory)", EnvVars: []string{"STICKYSEAT_MAX_SEATS"}}
}

// poolFromFlags builds the pool the flags describe; every error names its flag.
func poolFromFlags(c *cli.Context) (assign.Pool, error) {
	p := assign.Pool{Name: c.String("pool")}
	if p.Name == "" {
		return p, fmt.Errorf("--pool: empty pool name")
	}
	maxUsers := c.Int("max-users")
	if maxUsers <= 0 {
		return p, fmt.Errorf("--max-users: quota must be positive, got %d", maxUsers)
	}
	servers, err := parseServers(c.String("servers"), maxUsers)
	if err != nil {
		return p, fmt.Errorf("--servers: %w", err)
	}
	p.Servers = servers
	if p.IdleTimeout, err = idleFlag(c); err != nil {
		return p, err
	}
	if p.DownGrace, err = downGraceFlag(c); err != nil {
		return p, err
	}
	if p.DownPolicy, err = downPolicyFlag(c); err != nil {
		return p, err
	}
	if err := queueFlags(c, &p); err != nil {
		return p, err
	}
	return p, nil
}

// queueFlags reads --when-full, --queue-timeout and --queue-max into p.
func queueFlags(c *cli.Context, p *assign.Pool) error {
	w, err := assign.ParseWhenFull(c.String("when-full"))
	if err != nil {
		return fmt.Errorf("--when-full: %w", err)
	}
	p.WhenFull, p.QueueTimeout, p.QueueMax = w, c.Duration("queue-timeout"), c.Int("queue-max")
	if p.QueueTimeout <= 0 {
		return fmt.Errorf("--queue-timeout: must be positive, got %s", p.QueueTimeout)
	}
	if p.QueueMax <= 0 {
		return fmt.Errorf("--queue-max: must be positive, got %d", p.QueueMax)
	}
	return nil
}

func idleFlag(c *cli.Context) (time.Duration, error) {
	idle, err := parseDuration(c.String("idle-timeout"))
	if err != nil {
		return 0, fmt.Errorf("--idle-timeout: %w", err)
	}
	return idle, nil
}

func downGraceFlag(c *cli.Context) (time.Duration, error) {
	grace := c.Duration("down-grace")
	if grace < 0 {
		return 0, fmt.Errorf("--down-grace: %q is not a duration of 0 or more (e.g. 10s)", grace)
	}
	return grace, nil
}

func downPolicyFlag(c *cli.Context) (assign.DownPolicy, error) {
	p, err := assign.ParseDownPolicy(c.String("down-policy"))
	if err != nil {
		return 0, fmt.Errorf("--down-policy: %w", err)
	}
	return p, nil
}

// parseServers reads "s1,s2=4" into servers; names without "=quota" get defQuota. A name
// given twice is left to assign.Config.Validate, the one duplicate check.
func parseServers(spec string, defQuota int) ([]assign.Server, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, fmt.Errorf("no servers given (e.g. --servers s1,s2,s3)")
	}
	var out []assign.Server
	for _, item := range strings.Split(spec, ",") {
		name, quota, hasQuota := strings.Cut(strings.TrimSpace(item), "=")
		name = strings.TrimSpace(name)
		if name == "" {
			return nil, fmt.Errorf("empty server name in %q", spec)
		}
		if err := assign.ValidName(name); err != nil {
			return nil, fmt.Errorf("server name %q: %w", name, err)
		}
		q := defQuota
		if hasQuota {
			n, err := strconv.Atoi(strings.TrimSpace(quota))
			if err != nil {
				return nil, fmt.Errorf("server %q: quota %q is not a number", name, quota)
			}
			if n <= 0 {
				return nil, fmt.Errorf("server %q: quota must be positive, got %d", name, n)
			}
			q = n
		}
		out = append(out, assign.Server{Name: name, Quota: q, State: assign.StateUp})
	}
	return out, nil
}

// positiveDuration reads the DurationFlag name, refusing zero and negative durations.
func positiveDuration(c *cli.Context, name string) (time.Duration, error) {
	d := c.Duration(name)
	if d <= 0 {
		return 0, fmt.Errorf("--%s: duration must be positive, got %s", name, d)
	}
	return d, nil
}

// parseDuration is time.ParseDuration that also refuses zero and negative durations.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (e.g. 30s, 15m, 24h)", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("duration must be positive, got %s", s)
	}
	return d, nil
}
