package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/stickyseat/stickyseat/agent"
	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/haproxy"
	"github.com/stickyseat/stickyseat/keyfrom"
)

// pools is the pool configuration of a run: the --config file with flag overrides, or the
// flags alone (one pool).
type pools struct {
	Policy   assign.Config
	KeyRules map[string]agent.KeyRule
	// HAProxy are the pools as haproxy-config renders them; server addresses may be empty.
	HAProxy []haproxy.Pool
	// Source says where they came from, for logs.
	Source string

	file        *fileConfig // the file they were read from, to place errors; nil for flags alone
	serversFlag bool        // the servers came from --servers
}

// validate is the one check of a configuration, whatever loaded it (serve, check-config,
// haproxy-config, SIGHUP and --watch-config reloads): assign's rules, names, duplicates,
// quotas and --max-seats included. A problem in a pool or server written in the file is
// placed at its line.
func (p pools) validate() error {
	err := p.Policy.Validate()
	var ce *assign.ConfigError
	switch {
	case err == nil || !errors.As(err, &ce):
		return err
	case p.serversFlag && ce.Server >= 0 && ce.First >= 0:
		return fmt.Errorf("--servers: duplicate server %q", p.Policy.Pools[ce.Pool].Servers[ce.Server].Name)
	case p.file != nil:
		return p.file.place(err)
	}
	return err
}

// overridable are the flags that, given with --config, override the file's only pool.
var overridable = []string{"servers", "max-users", "idle-timeout", "pool", "down-grace", "down-policy", "when-full", "queue-timeout", "queue-max", "key-from-body", "key-fallback"}

// loadPools reads the pools the flags point at and validates them. It is called at start
// and at every reload.
func loadPools(c *cli.Context) (pools, error) {
	p, err := readPools(c)
	if err != nil {
		return pools{}, err
	}
	p.Policy.MaxSeats = c.Int("max-seats")
	// The HAProxy side answers a pool's queued users only if the pool has a line.
	for i := range p.HAProxy {
		for _, ap := range p.Policy.Pools {
			if ap.Name == p.HAProxy[i].Name {
				p.HAProxy[i].Queue = ap.WhenFull == assign.WhenFullQueue
				p.HAProxy[i].QueueTimeout = ap.QueueTimeout
			}
		}
	}
	return p, p.validate()
}

// readPools builds the pools from the flags or the file, without the checks that need them
// all (validate).
func readPools(c *cli.Context) (pools, error) {
	path := c.String("config")
	if path == "" {
		pool, err := poolFromFlags(c)
		if err != nil {
			return pools{}, err
		}
		rule, err := keyRuleFromFlags(c)
		if err != nil {
			return pools{}, err
		}
		hp := haproxy.Pool{Name: pool.Name}
		for _, s := range pool.Servers {
			hp.Servers = append(hp.Servers, haproxy.Server{Name: s.Name})
		}
		return pools{Policy: assign.Config{Pools: []assign.Pool{pool}}, KeyRules: map[string]agent.KeyRule{"": rule},
			HAProxy: []haproxy.Pool{hp}, Source: "flags", serversFlag: true}, nil
	}
	f, err := loadConfigFile(path)
	if err != nil {
		return pools{}, err // names the file, and the line when the problem is in it
	}
	if err := overrideFromFlags(c, &f); err != nil {
		return pools{}, err
	}
	return f.pools(c.IsSet("servers")), nil
}

// overrideFromFlags applies the pool flags given alongside --config to the file's only pool.
func overrideFromFlags(c *cli.Context, f *fileConfig) error {
	for _, name := range overridable {
		if c.IsSet(name) && len(f.Pools) != 1 {
			return fmt.Errorf("--%s: overrides the pool of a config file with one pool only (%s has %d)", name, f.Path, len(f.Pools))
		}
	}
	if len(f.Pools) != 1 {
		return nil
	}
	fp := &f.Pools[0]
	var err error
	if c.IsSet("pool") {
		fp.Pool.Name, fp.HAProxy.Name = c.String("pool"), c.String("pool")
	}
	if c.IsSet("servers") || c.IsSet("max-users") {
		if !c.IsSet("servers") {
			return fmt.Errorf("--max-users: with --config it only applies to servers given with --servers")
		}
		pool, err := poolFromFlags(c)
		if err != nil {
			return err
		}
		addrs := map[string]string{}
		for _, s := range fp.HAProxy.Servers {
			addrs[s.Name] = s.Addr
		}
		fp.Pool.Servers, fp.HAProxy.Servers, fp.servers = pool.Servers, nil, nil
		for _, s := range pool.Servers {
			fp.HAProxy.Servers = append(fp.HAProxy.Servers, haproxy.Server{Name: s.Name, Addr: addrs[s.Name]})
		}
	}
	if c.IsSet("idle-timeout") {
		if fp.Pool.IdleTimeout, err = idleFlag(c); err != nil {
			return err
		}
	}
	if c.IsSet("down-grace") {
		if fp.Pool.DownGrace, err = downGraceFlag(c); err != nil {
			return err
		}
	}
	if c.IsSet("down-policy") {
		if fp.Pool.DownPolicy, err = downPolicyFlag(c); err != nil {
			return err
		}
	}
	if c.IsSet("when-full") || c.IsSet("queue-timeout") || c.IsSet("queue-max") {
		var q assign.Pool
		if err := queueFlags(c, &q); err != nil {
			return err
		}
		if c.IsSet("when-full") {
			fp.Pool.WhenFull = q.WhenFull
		}
		if c.IsSet("queue-timeout") {
			fp.Pool.QueueTimeout = q.QueueTimeout
		}
		if c.IsSet("queue-max") {
			fp.Pool.QueueMax = q.QueueMax
		}
	}
	if c.IsSet("key-from-body") || c.IsSet("key-fallback") {
		rule, err := keyRuleFromFlags(c)
		if err != nil {
			return err
		}
		if c.IsSet("key-from-body") {
			fp.KeyRule.FromBody = rule.FromBody
		}
		if c.IsSet("key-fallback") {
			fp.KeyRule.Fallback = rule.Fallback
		}
	}
	return nil
}

// keyRuleFromFlags reads --key-from-body and --key-fallback.
func keyRuleFromFlags(c *cli.Context) (agent.KeyRule, error) {
	var rule agent.KeyRule
	if spec := c.String("key-from-body"); spec != "" {
		var err error
		if rule.FromBody, err = keyfrom.Parse(spec); err != nil {
			return rule, fmt.Errorf("--key-from-body: %w", err)
		}
	}
	rule.Fallback = c.String("key-fallback")
	if err := rule.Validate(); err != nil {
		return rule, fmt.Errorf("--key-fallback: %w", err)
	}
	return rule, nil
}
