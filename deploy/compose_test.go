package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// composeFile is the part of docker-compose.yml these tests read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Networks map[string]struct {
		Internal bool `yaml:"internal"`
	} `yaml:"networks"`
}

type composeService struct {
	Image    string    `yaml:"image"`
	Command  []string  `yaml:"command"`
	Volumes  []volume  `yaml:"volumes"`
	Networks yaml.Node `yaml:"networks"`
}

// networks lists the service's networks, written as a list or as a map.
func (s composeService) networks() []string {
	var names []string
	switch s.Networks.Kind {
	case yaml.SequenceNode:
		for _, n := range s.Networks.Content {
			names = append(names, n.Value)
		}
	case yaml.MappingNode:
		for i := 0; i < len(s.Networks.Content); i += 2 {
			names = append(names, s.Networks.Content[i].Value)
		}
	}
	return names
}

// volume is one entry of a service's volumes, in the short ("src:dst:ro") or long syntax.
type volume struct {
	Type, Source, Target string
	ReadOnly             bool
}

func (v *volume) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		parts := strings.Split(n.Value, ":")
		if len(parts) < 2 || len(parts) > 3 {
			return fmt.Errorf("line %d: volume %q: want source:target[:mode]", n.Line, n.Value)
		}
		v.Source, v.Target = parts[0], parts[1]
		v.ReadOnly = len(parts) == 3 && slices.Contains(strings.Split(parts[2], ","), "ro")
		v.Type = "volume"
		if strings.HasPrefix(v.Source, ".") || strings.HasPrefix(v.Source, "/") || strings.HasPrefix(v.Source, "~") {
			v.Type = "bind"
		}
		return nil
	}
	var long struct {
		Type     string `yaml:"type"`
		Source   string `yaml:"source"`
		Target   string `yaml:"target"`
		ReadOnly bool   `yaml:"read_only"`
	}
	if err := n.Decode(&long); err != nil {
		return err
	}
	*v = volume{Type: long.Type, Source: long.Source, Target: long.Target, ReadOnly: long.ReadOnly}
	return nil
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	if err := yaml.Unmarshal([]byte(readFile(t, "docker-compose.yml")), &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// TestComposeConfig validates docker-compose.yml with docker-compose itself (no engine needed).
func TestComposeConfig(t *testing.T) {
	bin := lookTool(t, "docker-compose", "make deps installs it as root: apt-get install docker-compose")
	cmd := exec.Command(bin, "--project-directory", ".", "-f", "docker-compose.yml", "config", "-q")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("docker-compose config -q: %v\n%s", err, out)
	}
}

// TestComposeMounts checks every file or directory the stack bind-mounts exists in the
// repository and is mounted read-only.
func TestComposeMounts(t *testing.T) {
	c := loadCompose(t)
	binds := 0
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			if v.Type != "bind" {
				continue
			}
			binds++
			if filepath.IsAbs(v.Source) || strings.HasPrefix(v.Source, "~") {
				t.Errorf("service %s mounts %s: want a path relative to the repository", name, v.Source)
				continue
			}
			if _, err := os.Stat(filepath.Join(root, v.Source)); err != nil {
				t.Errorf("service %s mounts %s: %v", name, v.Source, err)
			}
			if !v.ReadOnly {
				t.Errorf("service %s mounts %s at %s read-write; want read-only", name, v.Source, v.Target)
			}
		}
	}
	if binds < 5 {
		t.Errorf("found %d bind mounts; want at least 5 (haproxy.cfg, the SPOE file, three backends)", binds)
	}
}

// TestComposeStack checks the shape of the stack: the blog's three backends, HAProxy, Redis,
// two agents on that Redis and clients, each on networks no one else needs.
func TestComposeStack(t *testing.T) {
	c := loadCompose(t)
	for _, name := range []string{"haproxy", "redis", "agent1", "agent2", "s1", "s2", "s3", "client1"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("no service %q", name)
		}
	}
	// The agents listen on 0.0.0.0 and trust their peers: that is safe only because no network
	// of the stack reaches outside Docker and only HAProxy shares the agents' network.
	for name, n := range c.Networks {
		if !n.Internal {
			t.Errorf("network %s is not internal", name)
		}
	}
	for name, s := range c.Services {
		nets := s.networks()
		if len(nets) == 0 {
			t.Errorf("service %s names no network (it would join the default one, which is not internal)", name)
		}
		if slices.Contains(nets, "agents") && name != "haproxy" && name != "redis" && !strings.HasPrefix(name, "agent") {
			t.Errorf("service %s is on the agents' network; only HAProxy, the agents and Redis may be", name)
		}
		if strings.HasPrefix(name, "client") && !slices.Equal(nets, []string{"clients"}) {
			t.Errorf("client %s is on networks %v; want only [clients]", name, nets)
		}
	}
	if got := c.Services["haproxy"].networks(); !slices.Equal(got, []string{"clients", "backends", "agents"}) {
		t.Errorf("haproxy networks = %v; want [clients backends agents]", got)
	}
	for _, name := range []string{"agent1", "agent2"} {
		cmd := c.Services[name].Command
		for _, want := range []string{"serve", "--redis=redis://redis:6379", "--listen=0.0.0.0:12345"} {
			if !slices.Contains(cmd, want) {
				t.Errorf("%s command = %q; want it to contain %q", name, cmd, want)
			}
		}
		if got := c.Services[name].networks(); !slices.Equal(got, []string{"agents"}) {
			t.Errorf("%s networks = %v; want [agents]", name, got)
		}
	}
}
