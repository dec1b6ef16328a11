package main

import (
	"errors"
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

// fileConfig is a config file, decoded with every default filled in; pools.validate checks it
// as a whole.
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

	at      filePos   // where the pool is written
	servers []filePos // where each server is written, in order; nil once flags replace them
}

// filePos is where a pool or server is written in the file, to place the errors found when
// the whole configuration is validated.
type filePos struct {
	path     string // pools[0] or pools[0].servers[1]
	line     int    // of the item
	nameLine int    // of its name
}

// policy is the assign configuration of every pool, in file order.
func (f fileConfig) policy() assign.Config {
	c := assign.Config{Pools: make([]assign.Pool, len(f.Pools))}
	for i, p := range f.Pools {
		c.Pools[i] = p.Pool
	}
	return c
}

// pools is the file as a run's configuration; serversFlag says --servers replaced the only
// pool's servers.
func (f fileConfig) pools(serversFlag bool) pools {
	p := pools{Policy: f.policy(), KeyRules: f.keyRules(), Source: f.Path, file: &f, serversFlag: serversFlag}
	for _, fp := range f.Pools {
		p.HAProxy = append(p.HAProxy, fp.HAProxy)
	}
	return p
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

// loadConfigFile reads and decodes the config file at path; errors name path as given. What
// needs the whole configuration (duplicate names, --max-seats) is checked by pools.validate.
func loadConfigFile(path string) (fileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return fileConfig{}, err
	}
	return decodeConfigFile(path, data)
}

// decodeConfigFile reads data, the content of the file called name, into a fileConfig with
// every default filled in, and reports the first value that cannot be read. Fields are
// checked in a fixed order, not in file order.
func decodeConfigFile(name string, data []byte) (fileConfig, error) {
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
	backends := map[string]backendOwner{haproxy.Frontend: {by: "the frontend"}, haproxy.AgentBackend: {by: "the agent backend"}}
	for i, item := range items {
		p, err := d.pool(item, fmt.Sprintf("pools[%d]", i), maxUsers, backends)
		if err != nil {
			return fileConfig{}, err
		}
		cfg.Pools = append(cfg.Pools, p)
	}
	return cfg, nil
}

// place turns an error of assign.Config.Validate on this file's pools into one at the line
// and path of the pool or server at fault, worded as the file's other errors.
func (f fileConfig) place(err error) error {
	var ce *assign.ConfigError
	if !errors.As(err, &ce) || ce.Pool < 0 || ce.Pool >= len(f.Pools) {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	d := configDecoder{file: f.Path}
	fp := f.Pools[ce.Pool]
	if ce.Server < 0 {
		if ce.First >= 0 && ce.First < len(f.Pools) {
			return d.errorf(fp.at.nameLine, fp.at.path+".name", "duplicate pool %q (first at line %d)", fp.Pool.Name, f.Pools[ce.First].at.nameLine)
		}
		return &fileError{Name: f.Path, Line: fp.at.line, Field: fp.at.path, Err: err}
	}
	if ce.Server >= len(fp.servers) { // servers given by flags
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	at := fp.servers[ce.Server]
	if ce.First >= 0 {
		return d.errorf(at.nameLine, at.path+".name", "duplicate server %q in pool %q", fp.Pool.Servers[ce.Server].Name, fp.Pool.Name)
	}
	return &fileError{Name: f.Path, Line: at.line, Field: at.path, Err: err}
}

// backendOwner is what took an HAProxy proxy name: a pool (its path) or a generated proxy.
type backendOwner struct {
	by        string
	byDefault bool // a pool's default backend name, not one the file gives
}

// pool reads pools[i]; backends holds the HAProxy proxy names taken so far. A backend name
// two pools share is refused here, with its line: haproxy-config could not write them.
func (d configDecoder) pool(n *yaml.Node, path string, maxUsers int, backends map[string]backendOwner) (filePool, error) {
	var fp filePool
	m, err := d.fields(n, path, "name", "idle-timeout", "down-grace", "down-policy", "when-full", "queue-timeout", "queue-max", "key-from-body", "key-fallback", "haproxy", "servers")
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
	at := filePos{path: path, line: m.line, nameLine: e.line}
	p := assign.Pool{Name: name, IdleTimeout: defaultIdleTimeout, DownGrace: assign.DefaultDownGrace,
		QueueTimeout: assign.DefaultQueueTimeout, QueueMax: assign.DefaultQueueMax}
	if e, ok := m.get("when-full"); ok {
		s, err := d.scalar(e)
		if err != nil {
			return fp, err
		}
		if p.WhenFull, err = assign.ParseWhenFull(s); err != nil {
			return fp, d.wrap(e, err)
		}
	}
	if e, ok := m.get("queue-timeout"); ok {
		s, err := d.scalar(e)
		if err != nil {
			return fp, err
		}
		if p.QueueTimeout, err = parseDuration(s); err != nil {
			return fp, d.wrap(e, err)
		}
	}
	if e, ok := m.get("queue-max"); ok {
		if p.QueueMax, err = d.positive(e); err != nil {
			return fp, err
		}
	}

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
	switch other, taken := backends[hp.Backend]; {
	case !taken:
		backends[hp.Backend] = backendOwner{by: path, byDefault: !explicit}
	case !explicit && other.byDefault:
		// Two pools of the same name: validate reports the name, the cause.
	case !explicit:
		return fp, d.errorf(backend.line, backend.path, "backend %q, the default for pool %q, is already used by %s: set another", hp.Backend, name, other.by)
	default:
		return fp, d.errorf(backend.line, backend.path, "backend %q is already used by %s", hp.Backend, other.by)
	}

	e, ok := m.get("servers")
	if !ok {
		return fp, d.errorf(m.keyLine("servers"), path+".servers", "at least one server is required")
	}
	items, err := d.list(e, "servers")
	if err != nil {
		return fp, err
	}
	var servers []filePos
	for j, item := range items {
		s, addr, pos, err := d.server(item, fmt.Sprintf("%s.servers[%d]", path, j), maxUsers)
		if err != nil {
			return fp, err
		}
		p.Servers = append(p.Servers, s)
		hp.Servers = append(hp.Servers, haproxy.Server{Name: s.Name, Addr: addr})
		servers = append(servers, pos)
	}
	return filePool{Pool: p, KeyRule: rule, HAProxy: hp, at: at, servers: servers}, nil
}

// server reads one server of a pool.
func (d configDecoder) server(n *yaml.Node, path string, maxUsers int) (s assign.Server, addr string, at filePos, err error) {
	s = assign.Server{Quota: maxUsers}
	m, err := d.fields(n, path, "name", "quota", "state", "address")
	if err != nil {
		return s, "", at, err
	}
	e, err := m.required("name")
	if err != nil {
		return s, "", at, err
	}
	if s.Name, err = d.name(e); err != nil {
		return s, "", at, err
	}
	at = filePos{path: path, line: m.line, nameLine: e.line}
	if e, ok := m.get("quota"); ok {
		if s.Quota, err = d.positive(e); err != nil {
			return s, "", at, err
		}
	} else if maxUsers == 0 {
		return s, "", at, d.errorf(m.line, path+".quota", "required (or set a top-level max-users)")
	}
	if e, ok := m.get("state"); ok {
		v, err := d.scalar(e)
		if err != nil {
			return s, "", at, err
		}
		if s.State, err = assign.ParseState(v); err != nil {
			return s, "", at, d.wrap(e, err)
		}
	}
	if e, ok := m.get("address"); ok {
		if addr, err = d.scalar(e); err != nil {
			return s, "", at, err
		}
		if err := checkServerAddr(addr); err != nil {
			return s, "", at, d.wrap(e, err)
		}
	}
	return s, addr, at, nil
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
