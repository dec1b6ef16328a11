package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/stickyseat/stickyseat/internal/testbed"
)

func TestServeFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no servers", []string{"serve"}, "--servers: no servers given (e.g. --servers s1,s2,s3)"},
		{"duplicate server", []string{"serve", "--servers", "s1,s2,s1"}, `--servers: duplicate server "s1"`},
		{"zero quota", []string{"serve", "--servers", "s1=0"}, `--servers: server "s1": quota must be positive, got 0`},
		{"bad quota", []string{"serve", "--servers", "s1=two"}, `--servers: server "s1": quota "two" is not a number`},
		{"zero max-users", []string{"serve", "--servers", "s1", "--max-users", "0"}, "--max-users: quota must be positive, got 0"},
		{"bad idle", []string{"serve", "--servers", "s1", "--idle-timeout", "soon"}, `--idle-timeout: "soon" is not a duration (e.g. 30s, 15m, 24h)`},
		{"zero idle", []string{"serve", "--servers", "s1", "--idle-timeout", "0s"}, "--idle-timeout: duration must be positive, got 0s"},
		{"bad listen", []string{"serve", "--servers", "s1", "--listen", "nowhere"}, `--listen: "nowhere" is not host:port`},
		{"bad log level", []string{"serve", "--servers", "s1", "--log-level", "loud"}, `--log-level: "loud" is not one of debug, info, warn, error`},
		{"bad log format", []string{"serve", "--servers", "s1", "--log-format", "xml"}, `--log-format: "xml" is not json or console`},
		{"bad decision timeout", []string{"serve", "--servers", "s1", "--decision-timeout", "-1s"}, "--decision-timeout: duration must be positive, got -1s"},
		{"bad key-from-body", []string{"serve", "--servers", "s1", "--key-from-body", "yaml:x"}, `--key-from-body: keyfrom: unknown kind "yaml" in "yaml:x" (want xml:<element>, json:<path> or regex:<expr>)`},
		{"bad key-fallback", []string{"serve", "--servers", "s1", "--key-fallback", "header"}, `--key-fallback: unknown key fallback "header" (want src or nothing)`},
		{"bad redis url", []string{"serve", "--servers", "s1", "--redis", "http://localhost"}, "--redis: "},
		{"redis timeout not below decision timeout", []string{"serve", "--servers", "s1", "--redis", "redis://127.0.0.1:1", "--redis-timeout", "1s"}, "--redis-timeout: 1s must be shorter than --decision-timeout 500ms"},
		{"negative refresh", []string{"serve", "--servers", "s1", "--redis", "redis://127.0.0.1:1", "--refresh-interval", "-1s"}, `--refresh-interval: "-1s" is not a duration of 0 or more (e.g. 1s, 0 to disable)`},
		{"key prefix with brace", []string{"serve", "--servers", "s1", "--redis", "redis://127.0.0.1:1", "--key-prefix", "a{b"}, `--key-prefix: "a{b" must be non-empty and hold no '{' or '}' (Redis Cluster hash tags)`},
		{"bad haproxy key", []string{"haproxy-config", "--servers", "s1", "--server-addr", "s1=127.0.0.1:1", "--key", "query:x"}, `--key: key "query:x": unknown kind "query" (want header:NAME, cookie:NAME, param:NAME, body or a sample expression)`},
		{"quotas above max seats", []string{"serve", "--servers", "s1=3,s2=3", "--max-seats", "5"}, `pool "default": quotas add up to 6 seats, above the limit of 5 seats per pool (raise --max-seats)`},
		{"bad int", []string{"serve", "--servers", "s1", "--max-users", "abc"}, `--max-users: invalid value "abc" (parse error)`},
		{"unknown flag", []string{"serve", "--bogus"}, "--bogus: unknown flag (see --help)"},
		{"extra argument", []string{"serve", "--servers", "s1", "extra"}, `serve: unexpected argument "extra" (every setting is a flag; see --help)`},
		{"redis flags checked without redis", []string{"serve", "--servers", "s1", "--refresh-interval", "-1s"}, `--refresh-interval: "-1s" is not a duration of 0 or more (e.g. 1s, 0 to disable)`},
		{"pprof without metrics", []string{"serve", "--servers", "s1", "--pprof"}, "--pprof: needs --metrics-listen"},
		{"bad down grace", []string{"serve", "--servers", "s1", "--down-grace", "-1s"}, `--down-grace: "-1s" is not a duration of 0 or more (e.g. 10s)`},
		{"bad when-full", []string{"serve", "--servers", "s1", "--when-full", "wait"}, `--when-full: unknown when-full "wait" (want reject or queue)`},
		{"zero queue timeout", []string{"serve", "--servers", "s1", "--when-full", "queue", "--queue-timeout", "0s"}, "--queue-timeout: must be positive, got 0s"},
		{"zero queue max", []string{"serve", "--servers", "s1", "--when-full", "queue", "--queue-max", "0"}, "--queue-max: must be positive, got 0"},
		{"bad down policy", []string{"serve", "--servers", "s1", "--down-policy", "wait"}, `--down-policy: unknown down policy "wait" (want move or keep)`},
		{"bad mode", []string{"haproxy-config", "--mode", "udp", "--servers", "s1", "--server-addr", "s1=127.0.0.1:1"}, `--mode: "udp" is not tcp or http`},
		{"body in tcp mode", []string{"haproxy-config", "--mode", "tcp", "--key", "body", "--servers", "s1", "--server-addr", "s1=127.0.0.1:1"}, "--key: body needs --mode http (HAProxy parses bodies in http mode only)"},
		{"missing server addr", []string{"haproxy-config", "--servers", "s1,s2", "--server-addr", "s1=127.0.0.1:1"}, `--server-addr: no address for server "s2" of pool "default"`},
		{"extra server addr", []string{"haproxy-config", "--servers", "s1", "--server-addr", "s1=127.0.0.1:1,s9=127.0.0.1:2"}, `--server-addr: server "s9" is in no pool`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), append([]string{"stickyseat"}, tt.args...), &out, &errOut)
			if strings.HasSuffix(tt.want, ": ") && err != nil && strings.HasPrefix(err.Error(), tt.want) {
				return // the rest of the message is the library's
			}
			if err == nil || err.Error() != tt.want {
				t.Errorf("run(%q) = %v; want %q", tt.args, err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
		})
	}
}

func TestServeFlagsFromEnv(t *testing.T) {
	t.Setenv("STICKYSEAT_SERVERS", "s1,s1")
	err := run(context.Background(), []string{"stickyseat", "serve"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || err.Error() != `--servers: duplicate server "s1"` {
		t.Errorf("serve with STICKYSEAT_SERVERS=s1,s1: %v; want the duplicate error", err)
	}
}

// TestHAProxyConfigPassesHAProxyCheck writes what haproxy-config prints and has every
// haproxy binary check it.
func TestHAProxyConfigPassesHAProxyCheck(t *testing.T) {
	bins, err := testbed.HAProxyBins()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v", err)
		}
		t.Skip(err)
	}
	for _, mode := range []string{"tcp", "http"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			var out bytes.Buffer
			args := []string{"stickyseat", "haproxy-config", "--mode", mode, "--standalone",
				"--servers", "s1=4,s2,s3", "--server-addr", "s1=127.0.0.1:9001,s2=127.0.0.1:9002,s3=[::1]:9003",
				"--frontend-bind", "127.0.0.1:8080", "--send-pool", "--out-dir", dir}
			if err := run(context.Background(), args, &out, &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
			cfg, err := os.ReadFile(filepath.Join(dir, "haproxy.cfg"))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"use-server %[var(txn.stickyseat.server)]", "server s1 127.0.0.1:9001 weight 0", "server s3 [::1]:9003 weight 0"} {
				if !bytes.Contains(cfg, []byte(want)) {
					t.Errorf("haproxy.cfg lacks %q", want)
				}
			}
			spoe, err := os.ReadFile(filepath.Join(dir, "stickyseat.spoe.conf"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(spoe, []byte("pool=str(default)")) {
				t.Errorf("SPOE file lacks pool=str(default) with --send-pool:\n%s", spoe)
			}
			for _, bin := range bins {
				if out, err := exec.Command(bin, "-c", "-f", filepath.Join(dir, "haproxy.cfg")).CombinedOutput(); err != nil {
					t.Errorf("%s -c: %v\n%s\n%s", bin, err, out, cfg)
				}
			}
		})
	}
}

// TestHAProxyConfigFromFile renders every pool of a config file and has haproxy check it.
func TestHAProxyConfigFromFile(t *testing.T) {
	bins, err := testbed.HAProxyBins()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v", err)
		}
		t.Skip(err)
	}
	dir := t.TempDir()
	args := []string{"stickyseat", "haproxy-config", "--config", "testdata/good-three-pools.yaml", "--mode", "http",
		"--server-addr", "a1=127.0.0.1:9101,a2=127.0.0.1:9102,l1=127.0.0.1:9103", "--frontend-bind", "127.0.0.1:8080",
		"--standalone", "--out-dir", dir}
	if err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	spoe, err := os.ReadFile(filepath.Join(dir, "stickyseat.spoe.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"backend be_web", "backend stickyseat_api.v2", "backend legacy-soap",
		"server s3 [2001:db8::3]:8080 weight 0", "server a1 127.0.0.1:9101 weight 0", "option http-buffer-request"} {
		if !bytes.Contains(cfg, []byte(want)) {
			t.Errorf("haproxy.cfg lacks %q", want)
		}
	}
	for _, want := range []string{"pool=var(txn.stickyseat_pool)", "body=req.body", "src=src"} {
		if !bytes.Contains(spoe, []byte(want)) {
			t.Errorf("SPOE file lacks %q:\n%s", want, spoe)
		}
	}
	for _, bin := range bins {
		if out, err := exec.Command(bin, "-c", "-f", filepath.Join(dir, "haproxy.cfg")).CombinedOutput(); err != nil {
			t.Errorf("%s -c: %v\n%s", bin, err, out)
		}
	}
}

func TestFlagsOverrideTheFile(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    string // poolSummaries
		wantErr string
	}{
		{"file alone", nil, "web: s1=4/up,s2=2/up idle 24h0m0s grace 10s move", ""},
		{"idle and servers from flags", []string{"--idle-timeout", "1h", "--servers", "s1,s9=5", "--max-users", "3"}, "web: s1=3/up,s9=5/up idle 1h0m0s grace 10s move", ""},
		{"pool name and policy", []string{"--pool", "shop", "--down-policy", "keep", "--down-grace", "0s"}, "shop: s1=4/up,s2=2/up idle 24h0m0s grace 0s keep", ""},
		{"max-users alone", []string{"--max-users", "3"}, "", "--max-users: with --config it only applies to servers given with --servers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got pools
			app := &cli.App{Flags: append(append([]cli.Flag{configFlag()}, poolFlags()...),
				&cli.StringFlag{Name: "key-from-body"}, &cli.StringFlag{Name: "key-fallback"}),
				Action: func(c *cli.Context) error {
					var err error
					got, err = loadPools(c)
					return err
				}}
			err := app.Run(append([]string{"x", "--config", "testdata/good-one-pool.yaml"}, tt.args...))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("loadPools(%q) error = %v; want %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := strings.Join(poolSummaries(got), "; "); s != tt.want {
				t.Errorf("loadPools(%q) = %s; want %s", tt.args, s, tt.want)
			}
		})
	}
}
