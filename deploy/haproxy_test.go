package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stickyseat/stickyseat/haproxy"
	"github.com/stickyseat/stickyseat/internal/haproxybin"
)

const (
	composeCfg  = "deploy/compose/haproxy.cfg"
	composeSPOE = "deploy/compose/stickyseat.spoe.conf"
	// spoeTarget is where docker-compose.yml mounts the SPOE file in the HAProxy container.
	spoeTarget = "/usr/local/etc/haproxy/stickyseat.spoe.conf"
)

// composeGenerated is the generator's input the header of deploy/compose/haproxy.cfg names.
func composeGenerated() haproxy.Config {
	return haproxy.Config{
		Mode:         "tcp",
		FrontendBind: ":8080",
		AgentAddr:    "agent1:12345",
		SPOEPath:     spoeTarget,
		Pools: []haproxy.Pool{{Name: "default", Servers: []haproxy.Server{
			{Name: "s1", Addr: "s1:8080"}, {Name: "s2", Addr: "s2:8080"}, {Name: "s3", Addr: "s3:8080"},
		}}},
	}
}

// haproxyBins returns the haproxy binaries to check with: HAPROXY_BINS, as in the other
// packages' tests, else haproxy from PATH or /usr/sbin.
func haproxyBins(t *testing.T) []string { return haproxybin.ForTest(t) }

var (
	filterLine = regexp.MustCompile(`(?m)^(\s*filter spoe engine stickyseat config )(\S+)$`)
	serverLine = regexp.MustCompile(`(?m)^\s*server (\S+) ([^\s:]+):\d+`)
	// unresolved is the one warning allowed: a compose service name that does not resolve
	// outside Docker (init-addr ... none keeps the server, in maintenance).
	unresolved = regexp.MustCompile(`could not resolve address '([^']+)', disabling server\.$`)
)

// TestComposeHAProxyCheck runs `haproxy -c` on the committed haproxy.cfg. Two things differ
// from inside the container, and the test handles both without changing what is checked:
//   - the SPOE file is mounted at /usr/local/etc/haproxy/: the filter line's path is rewritten
//     to the file in deploy/compose (only that line; the test fails if it is not there);
//   - the servers' addresses are compose service names, which do not resolve here. The config
//     itself copes with that, as it must at container start when a service is not up yet:
//     "init-addr last,libc,none" keeps an unresolved server (in maintenance) and "resolvers
//     docker" resolves it later. So the file is checked as committed, and the only warnings
//     accepted are "could not resolve address" for the compose services.
func TestComposeHAProxyCheck(t *testing.T) {
	cfg := readFile(t, composeCfg)
	m := filterLine.FindStringSubmatch(cfg)
	if m == nil || m[2] != spoeTarget {
		t.Fatalf("%s: no line %q", composeCfg, "filter spoe engine stickyseat config "+spoeTarget)
	}
	spoe, err := filepath.Abs(filepath.Join(root, composeSPOE))
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(tmp, []byte(filterLine.ReplaceAllString(cfg, "${1}"+spoe)), 0o644); err != nil {
		t.Fatal(err)
	}
	services := loadCompose(t).Services
	for _, bin := range haproxyBins(t) {
		out, err := exec.Command(bin, "-c", "-f", tmp).CombinedOutput()
		if err != nil {
			t.Errorf("%s -c -f %s: %v\n%s", bin, composeCfg, err, out)
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			if !strings.Contains(line, "[WARNING]") && !strings.Contains(line, "[ALERT]") {
				continue
			}
			if m := unresolved.FindStringSubmatch(line); m != nil && strings.Contains(line, "[WARNING]") {
				if _, ok := services[m[1]]; ok {
					continue
				}
			}
			t.Errorf("%s -c -f %s: %s", bin, composeCfg, line)
		}
	}
}

// TestComposeHAProxyNames checks haproxy.cfg against docker-compose.yml: every server address
// is a compose service, and the SPOE file path is where the stack mounts that file.
func TestComposeHAProxyNames(t *testing.T) {
	cfg := readFile(t, composeCfg)
	c := loadCompose(t)
	servers := serverLine.FindAllStringSubmatch(cfg, -1)
	if len(servers) != 5 {
		t.Errorf("%s has %d server lines; want 5 (s1, s2, s3, agent1, agent2)", composeCfg, len(servers))
	}
	for _, s := range servers {
		if _, ok := c.Services[s[2]]; !ok {
			t.Errorf("%s: server %s at %q, which is no compose service", composeCfg, s[1], s[2])
		}
	}
	mounts := map[string]string{}
	for _, v := range c.Services["haproxy"].Volumes {
		mounts[v.Target] = filepath.Clean(v.Source)
	}
	want := map[string]string{
		spoeTarget:                           composeSPOE,
		"/usr/local/etc/haproxy/haproxy.cfg": composeCfg,
	}
	for target, src := range want {
		if got := mounts[target]; got != src {
			t.Errorf("haproxy service mounts %q at %s; want %q", got, target, src)
		}
	}
}

// TestComposeHAProxyGenerated keeps the committed files in step with the generator: the SPOE
// file is its output unchanged, and every line it writes for haproxy.cfg is in the committed
// file, in order (the hand-written lines around and between them are allowed).
func TestComposeHAProxyGenerated(t *testing.T) {
	cfg, spoe, err := haproxy.Render(composeGenerated())
	if err != nil {
		t.Fatal(err)
	}
	const regen = "regenerate with the command in the header of " + composeCfg
	if got := readFile(t, composeSPOE); got != string(spoe) {
		t.Errorf("%s differs from the generator's output (%s):\n--- want ---\n%s", composeSPOE, regen, spoe)
	}
	committed := strings.Split(readFile(t, composeCfg), "\n")
	i := 0
	for n, line := range strings.Split(string(cfg), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		for i < len(committed) && committed[i] != line {
			i++
		}
		if i == len(committed) {
			t.Fatalf("%s lacks generated line %d, or has it out of order (%s):\n%s", composeCfg, n+1, regen, line)
		}
		i++
	}
}
