package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/stickyseat/stickyseat/agent"
	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/haproxy"
	"github.com/stickyseat/stickyseat/keyfrom"
)

// configFlag names the YAML file describing the pools; serve, haproxy-config and check-config
// share it.
func configFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "config", Usage: "YAML file describing the pools: servers, quotas, timeouts, key rules", EnvVars: []string{"STICKYSEAT_CONFIG"}}
}

// defaultIdleTimeout is the idle-timeout of a pool that sets none, the same as --idle-timeout's.
const defaultIdleTimeout = 24 * time.Hour

// fileConfig is a config file, validated, with every default filled in.
type fileConfig struct {
	// Path is the file it was read from, as given.
	Path  string
	Pools []filePool
}

// filePool is one pool of a config file, as each component needs it.
type filePool struct {
	// Pool.DownGrace is assign.DefaultDownGrace when the file gives none, so zero only
	// comes from an explicit "down-grace: 0s" (move at once, as assign.Pool reads zero).
	Pool    assign.Pool
	KeyRule agent.KeyRule
	// HAProxy has Backend set even when the file leaves it out; a server's Addr is empty
	// when the file gives no address.
	HAProxy haproxy.Pool
}

// policy is the assign configuration of every pool, in file order.
func (f fileConfig) policy() assign.Config {
	c := assign.Config{Pools: make([]assign.Pool, len(f.Pools))}
	for i, p := range f.Pools {
		c.Pools[i] = p.Pool
	}
	return c
}

// keyRules are the pools' key rules by pool name. The only pool of a file is also the
// default (""), for messages that send no pool argument.
func (f fileConfig) keyRules() map[string]agent.KeyRule {
	rules := make(map[string]agent.KeyRule, len(f.Pools)+1)
	for _, p := range f.Pools {
		rules[p.Pool.Name] = p.KeyRule
	}
	if len(f.Pools) == 1 {
		rules[""] = f.Pools[0].KeyRule
	}
	return rules
}

// loadConfigFile reads and validates the config file at path; errors name path as given.
func loadConfigFile(path string) (fileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return fileConfig{}, err
	}
	return parseConfigFile(path, data)
}

// parseConfigFile validates data, the content of the file called name, and reports the first
// problem found. Fields are checked in a fixed order, not in file order.
func parseConfigFile(name string, data []byte) (fileConfig, error) {
	d := configDecoder{file: name}
	root, err := d.document(data)
	if err != nil {
		return fileConfig{}, err
	}
	top, err := d.fields(root, "", "pools", "max-users")
	if err != nil {
		return fileConfig{}, err
	}
	maxUsers := 0
	if e, ok := top.get("max-users"); ok {
		if maxUsers, err = d.positive(e); err != nil {
			return fileConfig{}, err
		}
	}
	e, ok := top.get("pools")
	if !ok {
		return fileConfig{}, d.errorf(top.keyLine("pools"), "pools", "at least one pool is required")
	}
	items, err := d.list(e, "pools")
	if err != nil {
		return fileConfig{}, err
	}
	cfg := fileConfig{Path: name}
	poolLines := map[string]int{}
	backends := map[string]string{haproxy.Frontend: "the frontend", haproxy.AgentBackend: "the agent backend"}
	for i, item := range items {
		p, err := d.pool(item, fmt.Sprintf("pools[%d]", i), maxUsers, poolLines, backends)
		if err != nil {
			return fileConfig{}, err
		}
		cfg.Pools = append(cfg.Pools, p)
	}
	// Everything assign checks was checked above, with a line; this only guards against the
	// two drifting apart.
	if err := cfg.policy().Validate(); err != nil {
		return fileConfig{}, fmt.Errorf("%s: %w", name, err)
	}
	return cfg, nil
}

// pool reads pools[i]. poolLines holds the pool names seen so far and the line of each;
// backends the HAProxy proxy names taken so far and by what.
func (d configDecoder) pool(n *yaml.Node, path string, maxUsers int, poolLines map[string]int, backends map[string]string) (filePool, error) {
	var fp filePool
	m, err := d.fields(n, path, "name", "idle-timeout", "down-grace", "down-policy", "key-from-body", "key-fallback", "haproxy", "servers")
	if err != nil {
		return fp, err
	}
	e, err := m.required("name")
	if err != nil {
		return fp, err
	}
	name, err := d.name(e)
	if err != nil {
		return fp, err
	}
	if first, dup := poolLines[name]; dup {
		return fp, d.errorf(e.line, e.path, "duplicate pool %q (first at line %d)", name, first)
	}
	poolLines[name] = e.line
	p := assign.Pool{Name: name, IdleTimeout: defaultIdleTimeout, DownGrace: assign.DefaultDownGrace}

	if e, ok := m.get("idle-timeout"); ok {
		s, err := d.scalar(e)
		if err != nil {
			return fp, err
		}
		if p.IdleTimeout, err = parseDuration(s); err != nil {
			return fp, d.wrap(e, err)
		}
	}
	if e, ok := m.get("down-grace"); ok {
		s, err := d.scalar(e)
		if err != nil {
			return fp, err
		}
		if p.DownGrace, err = parseGrace(s); err != nil {
			return fp, d.wrap(e, err)
		}
	}
	if e, ok := m.get("down-policy"); ok {
		s, err := d.scalar(e)
		if err != nil {
			return fp, err
		}
		if p.DownPolicy, err = assign.ParseDownPolicy(s); err != nil {
			return fp, d.wrap(e, err)
		}
	}

	var rule agent.KeyRule
	if e, ok := m.get("key-from-body"); ok {
		s, err := d.scalar(e)
		if err != nil {
			return fp, err
		}
		if rule.FromBody, err = keyfrom.Parse(s); err != nil {
			return fp, d.wrap(e, err)
		}
	}
	if e, ok := m.get("key-fallback"); ok {
		if rule.Fallback, err = d.scalar(e); err != nil {
			return fp, err
		}
		if err := rule.Validate(); err != nil {
			return fp, d.wrap(e, err)
		}
	}

	hp := haproxy.Pool{Name: name, Backend: haproxy.BackendPrefix + name}
	// A default backend name can collide too (pool "agent" with the agent's backend):
	// the error is then placed at the pool's name.
	backend := yamlEntry{path: path + ".haproxy.backend", line: e.line}
	explicit := false
	if e, ok := m.get("haproxy"); ok {
		h, err := d.fields(e.value, e.path, "backend")
		if err != nil {
			return fp, err
		}
		if e, ok := h.get("backend"); ok {
			if hp.Backend, err = d.name(e); err != nil {
				return fp, err
			}
			backend, explicit = e, true
		}
	}
	if other, taken := backends[hp.Backend]; taken {
		if !explicit {
			return fp, d.errorf(backend.line, backend.path, "backend %q, the default for pool %q, is already used by %s: set another", hp.Backend, name, other)
		}
		return fp, d.errorf(backend.line, backend.path, "backend %q is already used by %s", hp.Backend, other)
	}
	backends[hp.Backend] = path

	e, ok := m.get("servers")
	if !ok {
		return fp, d.errorf(m.keyLine("servers"), path+".servers", "at least one server is required")
	}
	items, err := d.list(e, "servers")
	if err != nil {
		return fp, err
	}
	for j, item := range items {
		s, addr, err := d.server(item, fmt.Sprintf("%s.servers[%d]", path, j), name, maxUsers, p.Servers)
		if err != nil {
			return fp, err
		}
		p.Servers = append(p.Servers, s)
		hp.Servers = append(hp.Servers, haproxy.Server{Name: s.Name, Addr: addr})
	}
	return filePool{Pool: p, KeyRule: rule, HAProxy: hp}, nil
}

// server reads one server of pool; earlier are the pool's servers read before it.
func (d configDecoder) server(n *yaml.Node, path, pool string, maxUsers int, earlier []assign.Server) (assign.Server, string, error) {
	s := assign.Server{Quota: maxUsers}
	m, err := d.fields(n, path, "name", "quota", "state", "address")
	if err != nil {
		return s, "", err
	}
	e, err := m.required("name")
	if err != nil {
		return s, "", err
	}
	if s.Name, err = d.name(e); err != nil {
		return s, "", err
	}
	for _, o := range earlier {
		if o.Name == s.Name {
			return s, "", d.errorf(e.line, e.path, "duplicate server %q in pool %q", s.Name, pool)
		}
	}
	if e, ok := m.get("quota"); ok {
		if s.Quota, err = d.positive(e); err != nil {
			return s, "", err
		}
	} else if maxUsers == 0 {
		return s, "", d.errorf(m.line, path+".quota", "required (or set a top-level max-users)")
	}
	if e, ok := m.get("state"); ok {
		v, err := d.scalar(e)
		if err != nil {
			return s, "", err
		}
		if s.State, err = assign.ParseState(v); err != nil {
			return s, "", d.wrap(e, err)
		}
	}
	var addr string
	if e, ok := m.get("address"); ok {
		if addr, err = d.scalar(e); err != nil {
			return s, "", err
		}
		if err := checkServerAddr(addr); err != nil {
			return s, "", d.wrap(e, err)
		}
	}
	return s, addr, nil
}

// parseGrace is parseDuration that also accepts zero: a down-grace of 0s moves users at once.
func parseGrace(s string) (time.Duration, error) {
	d, err := parseDuration(s)
	if err == nil {
		return d, nil
	}
	switch d, perr := time.ParseDuration(strings.TrimSpace(s)); {
	case perr != nil:
		return 0, err // not a duration at all: parseDuration said so
	case d == 0:
		return 0, nil
	default:
		return 0, fmt.Errorf("must not be negative, got %s", s)
	}
}

// checkServerAddr accepts host:port with a host and a port in 1..65535, what haproxy-config
// writes on a server line.
func checkServerAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if strings.ContainsFunc(host, func(r rune) bool { return r <= ' ' || r == 0x7f }) || strings.ContainsAny(host, `#"'\@`) {
		return fmt.Errorf("%q: unexpected character in host", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q is not 1 to 65535", addr, port)
	}
	return nil
}
