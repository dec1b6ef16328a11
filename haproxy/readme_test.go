package haproxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readmeSnippets returns the ```haproxy blocks of the README's first screen (before its
// variables table): the tcp frontend and backend, the http ones, the agent backend and the
// SPOE file, in that order.
func readmeSnippets(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	top, _, ok := strings.Cut(string(b), "\n### Variables the agent sets")
	if !ok {
		t.Fatal(`README.md has no "### Variables the agent sets" heading`)
	}
	var blocks []string
	for rest := top; ; {
		_, after, found := strings.Cut(rest, "\n```haproxy\n")
		if !found {
			break
		}
		block, next, closed := strings.Cut(after, "\n```\n")
		if !closed {
			t.Fatal("README.md: unclosed ```haproxy block")
		}
		blocks = append(blocks, block+"\n")
		rest = "\n" + next
	}
	if len(blocks) != 4 {
		t.Fatalf("README.md's first screen has %d haproxy blocks; want 4 (tcp, http, agent backend, SPOE file)", len(blocks))
	}
	return blocks
}

// withoutComments drops comment and blank lines: the README shows the generator's lines
// without the comments that explain them.
func withoutComments(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if trimmed := strings.TrimSpace(line); trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// readmeConfig is what the README's snippets were generated from:
// stickyseat haproxy-config --mode MODE --servers s1,s2,s3
// --server-addr s1=10.0.0.1:8080,s2=10.0.0.2:8080,s3=10.0.0.3:8080
func readmeConfig(mode string) Config {
	return Config{Mode: mode, FrontendBind: ":8080", AgentAddr: "127.0.0.1:12345", Pools: []Pool{{Name: "default", Servers: []Server{
		{Name: "s1", Addr: "10.0.0.1:8080"}, {Name: "s2", Addr: "10.0.0.2:8080"}, {Name: "s3", Addr: "10.0.0.3:8080"},
	}}}}
}

// TestReadmeSnippetsAreTheGeneratorsOutput keeps the README's first screen in step with
// `stickyseat haproxy-config`, and checks that what it shows, copied as it is into a
// haproxy.cfg with a global and a defaults section, passes `haproxy -c` without a warning
// on every binary.
func TestReadmeSnippetsAreTheGeneratorsOutput(t *testing.T) {
	blocks := readmeSnippets(t)
	agent, spoeBlock := blocks[2], blocks[3]
	for i, mode := range []string{ModeTCP, ModeHTTP} {
		t.Run(mode, func(t *testing.T) {
			cfg, spoe, err := Render(readmeConfig(mode))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := withoutComments(blocks[i]+agent), withoutComments(string(cfg)); got != want {
				t.Errorf("README's %s snippet and agent backend differ from the generator's output:\n--- README ---\n%s\n--- generated ---\n%s", mode, got, want)
			}
			// The README shows the tcp SPOE file and says the http one differs in its key.
			readmeSPOE := spoeBlock
			if mode == ModeHTTP {
				readmeSPOE = strings.Replace(spoeBlock, " key=src ", " key=req.hdr(x-user) ", 1)
			}
			if got, want := withoutComments(readmeSPOE), withoutComments(string(spoe)); got != want {
				t.Errorf("README's SPOE file (%s) differs from the generator's output:\n--- README ---\n%s\n--- generated ---\n%s", mode, got, want)
			}

			dir := t.TempDir()
			spoePath := filepath.Join(dir, "stickyseat.spoe.conf")
			full := "global\n    log stdout format raw local0\n\ndefaults\n    log global\n    timeout connect 5s\n    timeout client 1m\n    timeout server 1m\n\n" +
				strings.ReplaceAll(blocks[i], DefaultSPOEPath, spoePath) + "\n" + agent
			if err := os.WriteFile(filepath.Join(dir, "haproxy.cfg"), []byte(full), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(spoePath, []byte(readmeSPOE), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, bin := range haproxyBins(t) {
				t.Run(binName(bin), func(t *testing.T) { checkConfig(t, bin, dir, "haproxy.cfg") })
			}
		})
	}
}
