package haproxy

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated files of the examples under ../examples")

// exampleSPOEFile is the SPOE file name the examples use. It is relative, so haproxy must run
// from the example's directory (`cd examples/tcp-source-ip && haproxy -f haproxy.cfg -db`),
// which is what someone trying the example does; copy it elsewhere and set an absolute path.
const exampleSPOEFile = "stickyseat.spoe.conf"

// examples are the example directories this package generates, with their configs.
var examples = map[string]Config{
	// The blog's setup: tcp, the user is the source IP, three servers (the agent gives each
	// two users: `stickyseat serve --servers s1,s2,s3 --max-users 2`).
	"tcp-source-ip": {
		Mode:         ModeTCP,
		FrontendBind: "127.0.0.1:8080",
		AgentAddr:    "127.0.0.1:12345",
		SPOEPath:     exampleSPOEFile,
		Key:          "src",
		Pools:        []Pool{{Name: "default", Servers: exampleServers()}},
	},
	// http, the user is the X-User header.
	"http-header": {
		Mode:         ModeHTTP,
		FrontendBind: "127.0.0.1:8080",
		AgentAddr:    "127.0.0.1:12345",
		SPOEPath:     exampleSPOEFile,
		Key:          "req.hdr(x-user)",
		Pools:        []Pool{{Name: "default", Servers: exampleServers()}},
	},
	// http, the user is a customer id inside a SOAP body; the agent extracts it
	// (`stickyseat serve --servers s1,s2,s3 --max-users 1 --key-from-body xml:CustomerId`).
	"soap-body": {
		Mode:         ModeHTTP,
		FrontendBind: "127.0.0.1:8080",
		AgentAddr:    "127.0.0.1:12345",
		SPOEPath:     exampleSPOEFile,
		SendBody:     true,
		Pools:        []Pool{{Name: "default", Servers: exampleServers()}},
	},
	// Two HAProxy nodes in front of the same servers, each with its own agent; the agents
	// share seats through one Redis (`stickyseat serve --redis redis://127.0.0.1:6379 ...`).
	"multi-node/node-a": {
		Mode:         ModeTCP,
		FrontendBind: "127.0.0.1:8080",
		AgentAddr:    "127.0.0.1:12345",
		SPOEPath:     exampleSPOEFile,
		Key:          "src",
		Pools:        []Pool{{Name: "default", Servers: exampleServers()}},
	},
	"multi-node/node-b": {
		Mode:         ModeTCP,
		FrontendBind: "127.0.0.1:8081",
		AgentAddr:    "127.0.0.1:12346",
		SPOEPath:     exampleSPOEFile,
		Key:          "src",
		Pools:        []Pool{{Name: "default", Servers: exampleServers()}},
	},
}

func exampleServers() []Server {
	return []Server{
		{Name: "s1", Addr: "127.0.0.1:9001"},
		{Name: "s2", Addr: "127.0.0.1:9002"},
		{Name: "s3", Addr: "127.0.0.1:9003"},
	}
}

// renderExample returns the files of one example directory.
func renderExample(t *testing.T, c Config) map[string][]byte {
	t.Helper()
	cfg, err := RenderStandalone(c, Globals{LogStdout: true})
	if err != nil {
		t.Fatalf("RenderStandalone() error: %v", err)
	}
	_, spoe, err := Render(c)
	if err != nil {
		t.Fatalf("Render() error: %v", err)
	}
	return map[string][]byte{"haproxy.cfg": cfg, exampleSPOEFile: spoe}
}

// TestExamplesUpToDate keeps the examples' generated files equal to what the package renders
// today. Run `go test ./haproxy -run TestExamplesUpToDate -update` after changing the output.
func TestExamplesUpToDate(t *testing.T) {
	for dir, c := range examples {
		for name, want := range renderExample(t, c) {
			path := filepath.Join("..", "examples", dir, name)
			if *update {
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("read %s: %v (run with -update to create it)", path, err)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s is out of date: run `go test ./haproxy -run TestExamplesUpToDate -update`", path)
			}
		}
	}
}

// TestHAProxyAcceptsExamples checks every examples/*/haproxy.cfg, not only the ones generated
// here, with haproxy -c run from the example's directory (their SPOE paths are relative).
func TestHAProxyAcceptsExamples(t *testing.T) {
	bins := haproxyBins(t)
	cfgs, err := filepath.Glob(filepath.Join("..", "examples", "*", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	nested, err := filepath.Glob(filepath.Join("..", "examples", "*", "*", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	cfgs = append(cfgs, nested...)
	for dir := range examples {
		if _, err := os.Stat(filepath.Join("..", "examples", dir, "haproxy.cfg")); err != nil {
			t.Errorf("example %s: %v", dir, err)
		}
	}
	for _, cfg := range cfgs {
		dir := filepath.Dir(cfg)
		t.Run(strings.TrimPrefix(dir, filepath.Join("..", "examples")+string(filepath.Separator)), func(t *testing.T) {
			for _, bin := range bins {
				t.Run(binName(bin), func(t *testing.T) { checkConfig(t, bin, dir, "haproxy.cfg") })
			}
		})
	}
}
