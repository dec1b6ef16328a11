package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/agent"
	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/haproxy"
)

// badConfigFiles maps each invalid file in testdata to the exact error it gives, named by its
// base name.
var badConfigFiles = map[string]string{
	"bad-address-port.yaml":        `bad-address-port.yaml:6: pools[0].servers[0].address: "10.0.0.1:99999": port "99999" is not 1 to 65535`,
	"bad-address.yaml":             `bad-address.yaml:6: pools[0].servers[0].address: "10.0.0.1" is not host:port`,
	"bad-backend-reserved.yaml":    `bad-backend-reserved.yaml:2: pools[0].haproxy.backend: backend "stickyseat_agent", the default for pool "agent", is already used by the agent backend: set another`,
	"bad-down-policy.yaml":         `bad-down-policy.yaml:4: pools[0].down-policy: unknown down policy "wait" (want move or keep)`,
	"bad-duplicate-backend.yaml":   `bad-duplicate-backend.yaml:10: pools[1].haproxy.backend: backend "be_shared" is already used by pools[0]`,
	"bad-duplicate-field.yaml":     `bad-duplicate-field.yaml:6: pools[0].servers[0].quota: given twice (first at line 5)`,
	"bad-duplicate-pool.yaml":      `bad-duplicate-pool.yaml:10: pools[2].name: duplicate pool "web" (first at line 2)`,
	"bad-duplicate-server.yaml":    `bad-duplicate-server.yaml:8: pools[0].servers[2].name: duplicate server "s1" in pool "web"`,
	"bad-empty-file.yaml":          `bad-empty-file.yaml:1: pools: at least one pool is required`,
	"bad-empty-servers.yaml":       `bad-empty-servers.yaml:3: pools[0].servers: at least one server is required`,
	"bad-haproxy-field.yaml":       `bad-haproxy-field.yaml:5: pools[0].haproxy: unknown field "mode"`,
	"bad-idle-timeout-zero.yaml":   `bad-idle-timeout-zero.yaml:3: pools[0].idle-timeout: duration must be positive, got 0s`,
	"bad-idle-timeout.yaml":        `bad-idle-timeout.yaml:3: pools[0].idle-timeout: "soon" is not a duration (e.g. 30s, 15m, 24h)`,
	"bad-indentation.yaml":         `bad-indentation.yaml:7: did not find expected '-' indicator`,
	"bad-key-fallback.yaml":        `bad-key-fallback.yaml:3: pools[0].key-fallback: unknown key fallback "header" (want src or nothing)`,
	"bad-key-from-body.yaml":       `bad-key-from-body.yaml:3: pools[0].key-from-body: keyfrom: unknown kind "yaml" in "yaml:CustomerId" (want xml:<element>, json:<path> or regex:<expr>)`,
	"bad-max-users.yaml":           `bad-max-users.yaml:1: max-users: must be positive, got -1`,
	"bad-missing-pool-name.yaml":   `bad-missing-pool-name.yaml:2: pools[0].name: required`,
	"bad-missing-quota.yaml":       `bad-missing-quota.yaml:6: pools[0].servers[1].quota: required (or set a top-level max-users)`,
	"bad-name-list.yaml":           `bad-name-list.yaml:2: pools[0].name: want a single value, got a list`,
	"bad-negative-down-grace.yaml": `bad-negative-down-grace.yaml:3: pools[0].down-grace: must not be negative, got -5s`,
	"bad-no-pools.yaml":            `bad-no-pools.yaml:1: pools: at least one pool is required`,
	"bad-no-servers.yaml":          `bad-no-servers.yaml:2: pools[0].servers: at least one server is required`,
	"bad-pool-name.yaml":           `bad-pool-name.yaml:2: pools[0].name: "web app" is not a valid name (use letters, digits, '_', '-' and '.')`,
	"bad-pools-not-list.yaml":      `bad-pools-not-list.yaml:1: pools: want a list of pools, got fields`,
	"bad-quota-text.yaml":          `bad-quota-text.yaml:5: pools[0].servers[0].quota: "four" is not a whole number`,
	"bad-quota-zero.yaml":          `bad-quota-zero.yaml:7: pools[0].servers[1].quota: must be positive, got 0`,
	"bad-server-name.yaml":         `bad-server-name.yaml:4: pools[0].servers[0].name: "s1#main" is not a valid name (use letters, digits, '_', '-' and '.')`,
	"bad-servers-mapping.yaml":     `bad-servers-mapping.yaml:3: pools[0].servers: want a list of servers, got fields`,
	"bad-state.yaml":               `bad-state.yaml:6: pools[0].servers[0].state: unknown server state "off" (want up, drain or down)`,
	"bad-tab.yaml":                 `bad-tab.yaml:4: found character that cannot start any token`,
	"bad-two-documents.yaml":       `bad-two-documents.yaml:6: a second YAML document: the file must hold one`,
	"bad-unclosed-quote.yaml":      `bad-unclosed-quote.yaml:3: found unexpected end of stream`,
	"bad-unknown-field.yaml":       `bad-unknown-field.yaml:5: pools[0].servers[0]: unknown field "qouta"`,
	"bad-unknown-top-field.yaml":   `bad-unknown-top-field.yaml:2: unknown field "pool"`,
}

// poolView is a filePool with its key extractor as its spec, so it compares with ==.
type poolView struct {
	Pool     assign.Pool
	KeyFrom  string
	Fallback string
	HAProxy  haproxy.Pool
}

func viewPools(cfg fileConfig) []poolView {
	var out []poolView
	for _, p := range cfg.Pools {
		v := poolView{Pool: p.Pool, Fallback: p.KeyRule.Fallback, HAProxy: p.HAProxy}
		if p.KeyRule.FromBody != nil {
			v.KeyFrom = fmt.Sprint(p.KeyRule.FromBody)
		}
		out = append(out, v)
	}
	return out
}

// goodConfigFiles maps each valid file in testdata to what it parses to.
var goodConfigFiles = map[string][]poolView{
	"good-one-pool.yaml": {{
		Pool: assign.Pool{Name: "web", IdleTimeout: 24 * time.Hour, DownGrace: assign.DefaultDownGrace, DownPolicy: assign.DownMove, QueueTimeout: assign.DefaultQueueTimeout, QueueMax: assign.DefaultQueueMax, Servers: []assign.Server{
			{Name: "s1", Quota: 4, State: assign.StateUp},
			{Name: "s2", Quota: 2, State: assign.StateUp},
		}},
		HAProxy: haproxy.Pool{Name: "web", Backend: "stickyseat_web", Servers: []haproxy.Server{{Name: "s1"}, {Name: "s2"}}},
	}},
	"good-three-pools.yaml": {
		{
			Pool: assign.Pool{Name: "web", IdleTimeout: 24 * time.Hour, DownGrace: 10 * time.Second, DownPolicy: assign.DownMove, QueueTimeout: assign.DefaultQueueTimeout, QueueMax: assign.DefaultQueueMax, Servers: []assign.Server{
				{Name: "s1", Quota: 4, State: assign.StateUp},
				{Name: "s2", Quota: 2, State: assign.StateDrain},
				{Name: "s3", Quota: 2, State: assign.StateUp},
			}},
			KeyFrom:  "xml:CustomerId",
			Fallback: "src",
			HAProxy: haproxy.Pool{Name: "web", Backend: "be_web", Servers: []haproxy.Server{
				{Name: "s1", Addr: "10.0.0.1:8080"},
				{Name: "s2", Addr: "10.0.0.2:8080"},
				{Name: "s3", Addr: "[2001:db8::3]:8080"},
			}},
		},
		{
			Pool: assign.Pool{Name: "api.v2", IdleTimeout: 15 * time.Minute, DownGrace: 0, DownPolicy: assign.DownKeep, QueueTimeout: assign.DefaultQueueTimeout, QueueMax: assign.DefaultQueueMax, Servers: []assign.Server{
				{Name: "a1", Quota: 10, State: assign.StateDown},
				{Name: "a2", Quota: 2, State: assign.StateUp},
			}},
			KeyFrom: "json:customer.id",
			HAProxy: haproxy.Pool{Name: "api.v2", Backend: "stickyseat_api.v2", Servers: []haproxy.Server{{Name: "a1"}, {Name: "a2"}}},
		},
		{
			Pool: assign.Pool{Name: "soap_legacy", IdleTimeout: 90 * time.Minute, DownGrace: 2 * time.Minute, DownPolicy: assign.DownMove, QueueTimeout: assign.DefaultQueueTimeout, QueueMax: assign.DefaultQueueMax, Servers: []assign.Server{
				{Name: "l1", Quota: 1, State: assign.StateDrain},
			}},
			KeyFrom: "regex:<Id>([0-9]+)</Id>",
			HAProxy: haproxy.Pool{Name: "soap_legacy", Backend: "legacy-soap", Servers: []haproxy.Server{{Name: "l1"}}},
		},
	},
}

// parseConfigFile decodes data, the content of the file called name, and validates it as
// loadPools does with no other flag.
func parseConfigFile(name string, data []byte) (fileConfig, error) {
	f, err := decodeConfigFile(name, data)
	if err != nil {
		return f, err
	}
	return f, f.pools(false).validate()
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestConfigFilesAllChecked keeps testdata and the tables in step: a file nobody checks
// proves nothing.
func TestConfigFilesAllChecked(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	onDisk := map[string]bool{}
	for _, p := range paths {
		name := filepath.Base(p)
		onDisk[name] = true
		_, bad := badConfigFiles[name]
		_, good := goodConfigFiles[name]
		if bad == good {
			t.Errorf("testdata/%s: want it in exactly one of badConfigFiles and goodConfigFiles", name)
		}
	}
	for name := range badConfigFiles {
		if !onDisk[name] {
			t.Errorf("badConfigFiles[%q]: no such file in testdata", name)
		}
	}
	for name := range goodConfigFiles {
		if !onDisk[name] {
			t.Errorf("goodConfigFiles[%q]: no such file in testdata", name)
		}
	}
}

func TestParseConfigFileErrors(t *testing.T) {
	for name, want := range badConfigFiles {
		t.Run(name, func(t *testing.T) {
			cfg, err := parseConfigFile(name, readTestdata(t, name))
			if err == nil {
				t.Fatalf("parseConfigFile(%q) = %+v, nil; want error %q", name, viewPools(cfg), want)
			}
			if got := err.Error(); got != want {
				t.Errorf("parseConfigFile(%q) error\n got: %s\nwant: %s", name, got, want)
			}
		})
	}
}

func TestParseConfigFile(t *testing.T) {
	for name, want := range goodConfigFiles {
		t.Run(name, func(t *testing.T) {
			cfg, err := parseConfigFile(name, readTestdata(t, name))
			if err != nil {
				t.Fatalf("parseConfigFile(%q): %v", name, err)
			}
			if cfg.Path != name {
				t.Errorf("parseConfigFile(%q).Path = %q; want %q", name, cfg.Path, name)
			}
			got := viewPools(cfg)
			if len(got) != len(want) {
				t.Fatalf("parseConfigFile(%q) has %d pools; want %d", name, len(got), len(want))
			}
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Errorf("parseConfigFile(%q) pool %d\n got: %+v\nwant: %+v", name, i, got[i], want[i])
				}
			}
		})
	}
}

// TestParseConfigFileYAMLForms covers what YAML allows beyond the testdata's plain style.
func TestParseConfigFileYAMLForms(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		want    []assign.Server // of the first pool
		wantErr string
	}{
		{"flow style", "pools: [{name: web, servers: [{name: s1, quota: 3}]}]", []assign.Server{{Name: "s1", Quota: 3}}, ""},
		{"quota in hex", "pools:\n- name: web\n  servers:\n  - name: s1\n    quota: 0x10\n", []assign.Server{{Name: "s1", Quota: 16}}, ""},
		{"quoted quota", "pools:\n- name: web\n  servers:\n  - name: s1\n    quota: \"5\"\n", []assign.Server{{Name: "s1", Quota: 5}}, ""},
		{"null state is up", "pools:\n- name: web\n  servers:\n  - name: s1\n    quota: 1\n    state:\n", []assign.Server{{Name: "s1", Quota: 1}}, ""},
		{"unknown top-level field", "x: 1\n", nil, `t.yaml:1: unknown field "x"`},
		{"alias", "max-users: 1\npools:\n- name: web\n  servers: &s [{name: s1}, {name: s2, state: drain}]\n- name: api\n  servers: *s\n",
			[]assign.Server{{Name: "s1", Quota: 1}, {Name: "s2", Quota: 1, State: assign.StateDrain}}, ""},
		{"null name", "pools:\n- name:\n  servers: [{name: s1, quota: 1}]\n", nil, "t.yaml:2: pools[0].name: required"},
		{"null servers", "pools:\n- name: web\n  servers:\n", nil, "t.yaml:3: pools[0].servers: at least one server is required"},
		{"empty document", "---\n", nil, "t.yaml:1: pools: at least one pool is required"},
		{"top level is a list", "- name: web\n", nil, `t.yaml:1: want fields like pools:, got a list`},
		{"pool is a word", "pools: [web]\n", nil, `t.yaml:1: pools[0]: want fields, got "web"`},
		{"unknown anchor", "pools:\n- name: web\n  servers: *nope\n", nil, "t.yaml:3: unknown anchor 'nope' referenced"},
		{"control character", "pools:\n- name: web\x01\n", nil, "t.yaml:2: control characters are not allowed"},
		{"huge quota", "pools:\n- name: web\n  servers: [{name: s1, quota: 99999999999999999999}]\n", nil, `t.yaml:3: pools[0].servers[0].quota: "99999999999999999999" is not a whole number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfigFile("t.yaml", []byte(tt.data))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("parseConfigFile(%q) error = %v; want %q", tt.data, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseConfigFile(%q): %v", tt.data, err)
			}
			if got := cfg.Pools[0].Pool.Servers; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseConfigFile(%q) servers = %+v; want %+v", tt.data, got, tt.want)
			}
		})
	}
}

func TestConfigFilePolicyAndKeyRules(t *testing.T) {
	tests := []struct {
		file      string
		wantPools []string
		wantRules map[string]string // pool → key-from-body spec and fallback
	}{
		{"good-one-pool.yaml", []string{"web"}, map[string]string{"": "|", "web": "|"}},
		{"good-three-pools.yaml", []string{"web", "api.v2", "soap_legacy"}, map[string]string{
			"web":         "xml:CustomerId|src",
			"api.v2":      "json:customer.id|",
			"soap_legacy": "regex:<Id>([0-9]+)</Id>|",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			cfg, err := loadConfigFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			policy := cfg.policy()
			if err := policy.Validate(); err != nil {
				t.Errorf("policy().Validate() = %v", err)
			}
			var gotPools []string
			for i, p := range policy.Pools {
				gotPools = append(gotPools, p.Name)
				if !reflect.DeepEqual(p, cfg.Pools[i].Pool) {
					t.Errorf("policy().Pools[%d] = %+v; want %+v", i, p, cfg.Pools[i].Pool)
				}
			}
			if !reflect.DeepEqual(gotPools, tt.wantPools) {
				t.Errorf("policy() pools = %q; want %q", gotPools, tt.wantPools)
			}
			gotRules := map[string]string{}
			for pool, r := range cfg.keyRules() {
				gotRules[pool] = ruleText(r)
			}
			if !reflect.DeepEqual(gotRules, tt.wantRules) {
				t.Errorf("keyRules() = %q; want %q", gotRules, tt.wantRules)
			}
		})
	}
}

func ruleText(r agent.KeyRule) string {
	from := ""
	if r.FromBody != nil {
		from = fmt.Sprint(r.FromBody)
	}
	return from + "|" + r.Fallback
}

func TestLoadConfigFileNamesThePath(t *testing.T) {
	path := filepath.Join("testdata", "bad-quota-zero.yaml")
	_, err := loadConfigFile(path)
	want := path + ":7: pools[0].servers[1].quota: must be positive, got 0"
	if err == nil || err.Error() != want {
		t.Errorf("loadConfigFile(%q) error = %v; want %q", path, err, want)
	}
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	if _, err := loadConfigFile(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("loadConfigFile(%q) error = %v; want one naming the file", missing, err)
	}
}

func TestCheckConfig(t *testing.T) {
	good := filepath.Join("testdata", "good-three-pools.yaml")
	big := writeFile(t, "pools:\n- name: web\n  servers: [{name: s1, quota: 3000000}, {name: s2, quota: 2000001}]\n")
	queueFile := writeFile(t, "pools:\n- name: web\n  when-full: queue\n  queue-timeout: 45s\n  queue-max: 500\n  servers: [{name: s1, quota: 2}]\n")
	queueDefaults := writeFile(t, "pools:\n- name: web\n  when-full: queue\n  servers: [{name: s1, quota: 2}]\n")
	badWhenFull := writeFile(t, "pools:\n- name: web\n  when-full: wait\n  servers: [{name: s1, quota: 2}]\n")
	badQueueMax := writeFile(t, "pools:\n- name: web\n  queue-max: 0\n  servers: [{name: s1, quota: 2}]\n")
	tests := []struct {
		name    string
		args    []string
		env     string // STICKYSEAT_CONFIG
		wantOut string
		wantErr string
	}{
		{"good file", []string{"--config", good}, "", "" +
			"pool web: 3 servers (s1=4 up, s2=2 drain, s3=2 up), idle 24h, down grace 10s, policy move, key from body xml:CustomerId, key fallback src\n" +
			"pool api.v2: 2 servers (a1=10 down, a2=2 up), idle 15m, down grace 0s, policy keep, key from body json:customer.id\n" +
			"pool soap_legacy: 1 server (l1=1 drain), idle 1h30m, down grace 2m, policy move, key from body regex:<Id>([0-9]+)</Id>\n", ""},
		{"good file from the environment", nil, filepath.Join("testdata", "good-one-pool.yaml"),
			"pool web: 2 servers (s1=4 up, s2=2 up), idle 24h, down grace 10s, policy move\n", ""},
		{"bad file", []string{"--config", filepath.Join("testdata", "bad-duplicate-server.yaml")}, "", "",
			filepath.Join("testdata", "bad-duplicate-server.yaml") + `:8: pools[0].servers[2].name: duplicate server "s1" in pool "web"`},
		{"no file", nil, "", "", "--config: no config file given (or set STICKYSEAT_CONFIG)"},
		{"a pool with a line", []string{"--config", queueFile}, "", "pool web: 1 server (s1=2 up), idle 24h, down grace 10s, policy move, when full queue (timeout 45s, max 500)\n", ""},
		{"a line with the default sizes", []string{"--config", queueDefaults}, "", "pool web: 1 server (s1=2 up), idle 24h, down grace 10s, policy move, when full queue (timeout 30s, max 100000)\n", ""},
		{"an unknown when-full", []string{"--config", badWhenFull}, "", "", badWhenFull + `:3: pools[0].when-full: unknown when-full "wait" (want reject or queue)`},
		{"a queue-max of zero", []string{"--config", badQueueMax}, "", "", badQueueMax + `:3: pools[0].queue-max: must be positive, got 0`},
		// serve refuses these: check-config applies the same --max-seats, default included.
		{"quotas past --max-seats", []string{"--config", filepath.Join("testdata", "good-one-pool.yaml"), "--max-seats", "5"}, "", "",
			filepath.Join("testdata", "good-one-pool.yaml") + `:3: pools[0]: pool "web": quotas add up to 6 seats, above the limit of 5 seats per pool (raise --max-seats)`},
		{"quotas past the default --max-seats", []string{"--config", big}, "", "",
			big + `:2: pools[0]: pool "web": quotas add up to 5000001 seats, above the limit of 5000000 seats per pool (raise --max-seats)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("STICKYSEAT_CONFIG", tt.env)
			var out, errOut bytes.Buffer
			args := append([]string{"stickyseat", "check-config"}, tt.args...)
			err := run(context.Background(), args, &out, &errOut)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if gotErr != tt.wantErr {
				t.Errorf("run(%q) error = %q; want %q", args, gotErr, tt.wantErr)
			}
			if got := out.String(); got != tt.wantOut {
				t.Errorf("run(%q) printed\n%s\nwant\n%s", args, got, tt.wantOut)
			}
		})
	}
}

// writeFile writes data to a file in a fresh directory and returns its path.
func writeFile(t *testing.T, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stickyseat.yaml")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestShortDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{24 * time.Hour, "24h"},
		{90 * time.Minute, "1h30m"},
		{time.Hour + 30*time.Second, "1h0m30s"},
		{15 * time.Minute, "15m"},
		{10 * time.Second, "10s"},
		{500 * time.Millisecond, "500ms"},
		{0, "0s"},
	}
	for _, tt := range tests {
		if got := shortDuration(tt.d); got != tt.want {
			t.Errorf("shortDuration(%v) = %q; want %q", tt.d, got, tt.want)
		}
	}
}

// TestNamesOneRule: --servers, --pool and the file refuse the same names (assign.ValidName),
// so serve never accepts a server haproxy-config cannot write, and duplicate names alike.
func TestNamesOneRule(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"server name with a colon", []string{"check-config", "--config", writeFile(t, "pools:\n- name: web\n  servers: [{name: \"s1:a\", quota: 1}]\n")},
			`:3: pools[0].servers[0].name: "s1:a" is not a valid name (use letters, digits, '_', '-' and '.')`},
		{"--servers with a colon", []string{"serve", "--servers", "s1:a"}, `--servers: server name "s1:a": character ':' not allowed: use letters, digits, '_', '-' and '.'`},
		{"--pool with a slash", []string{"serve", "--servers", "s1", "--pool", "a/b"}, `pool name "a/b": character '/' not allowed: use letters, digits, '_', '-' and '.'`},
		// Duplicates are found by assign.Config.Validate alone, placed where they were written.
		{"duplicate pool after an explicit backend", []string{"check-config", "--config", writeFile(t, "pools:\n- name: web\n  haproxy: {backend: be_web}\n  servers: [{name: s1, quota: 1}]\n- name: web\n  servers: [{name: s1, quota: 1}]\n")},
			`:5: pools[1].name: duplicate pool "web" (first at line 2)`},
		{"duplicate server from --servers over a file", []string{"haproxy-config", "--config", filepath.Join("testdata", "good-one-pool.yaml"), "--servers", "s1,s1", "--server-addr", "s1=127.0.0.1:1"}, `--servers: duplicate server "s1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), append([]string{"stickyseat"}, tt.args...), &out, &errOut)
			if err == nil || !strings.HasSuffix(err.Error(), tt.want) {
				t.Errorf("run(%q) error = %v; want one ending %q", tt.args, err, tt.want)
			}
		})
	}
}
