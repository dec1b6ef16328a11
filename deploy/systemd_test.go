package deploy

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const unitPath = "examples/systemd/stickyseat.service"

// unitSettings returns the unit's settings by key, in file order, comments left out. Units
// may repeat a key (Environment=, SystemCallFilter=); every value is kept.
func unitSettings(t *testing.T, unit string) map[string][]string {
	t.Helper()
	settings := map[string][]string{}
	for n, line := range strings.Split(unit, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s:%d: %q is no key=value", unitPath, n+1, line)
		}
		settings[key] = append(settings[key], value)
	}
	return settings
}

// TestSystemdUnitHardening checks the unit keeps its hardening, listens on loopback by
// default and reloads with SIGHUP.
func TestSystemdUnitHardening(t *testing.T) {
	s := unitSettings(t, readFile(t, unitPath))
	want := map[string]string{
		"DynamicUser":             "yes",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectControlGroups":    "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"RestrictNamespaces":      "yes",
		"RestrictSUIDSGID":        "yes",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"CapabilityBoundingSet":   "",
		"AmbientCapabilities":     "",
		"SystemCallArchitectures": "native",
		"EnvironmentFile":         "-/etc/default/stickyseat",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
	}
	for key, value := range want {
		// The last assignment wins for these keys (an empty one resets the list).
		if got, ok := s[key]; !ok || got[len(got)-1] != value {
			t.Errorf("%s=%q; want %q", key, got, value)
		}
	}
	if !slices.Contains(s["SystemCallFilter"], "@system-service") {
		t.Errorf("SystemCallFilter=%q; want @system-service among them", s["SystemCallFilter"])
	}
	if _, ok := s["User"]; ok {
		t.Error("User= is set; DynamicUser=yes is the point")
	}
	env := map[string]string{}
	for _, e := range s["Environment"] {
		k, v, _ := strings.Cut(e, "=")
		env[k] = v
	}
	if got := env["STICKYSEAT_CONFIG"]; got != "/etc/stickyseat/stickyseat.yaml" {
		t.Errorf("Environment=STICKYSEAT_CONFIG=%q; want /etc/stickyseat/stickyseat.yaml", got)
	}
	host, _, err := net.SplitHostPort(env["STICKYSEAT_LISTEN"])
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		t.Errorf("Environment=STICKYSEAT_LISTEN=%q; want a loopback address", env["STICKYSEAT_LISTEN"])
	}
	// Flags on the command line would beat /etc/default/stickyseat's variables.
	if got := s["ExecStart"]; len(got) != 1 || got[0] != "/usr/local/bin/stickyseat serve" {
		t.Errorf("ExecStart=%q; want /usr/local/bin/stickyseat serve (settings come from the environment)", got)
	}
}

// TestSystemdVerify runs `systemd-analyze verify` on the unit. It needs no running systemd,
// but it does need the ExecStart binary, so the unit is verified with a stub at that path.
// An environment where systemd-analyze cannot verify even a minimal unit skips the test; any
// complaint about ours fails it, warnings included (verify exits 0 on an unknown key or a bad
// value, printing only a line).
func TestSystemdVerify(t *testing.T) {
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze (Debian's systemd package)")
	}
	dir := t.TempDir()
	stub := filepath.Join(dir, "stickyseat")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	verify := func(name, unit string) ([]byte, error) {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "verify", "--man=no", path)
		cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0")
		return cmd.CombinedOutput()
	}
	if out, err := verify("control.service", "[Service]\nExecStart="+stub+"\n"); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Skipf("systemd-analyze verify cannot run here (a minimal unit gives %v):\n%s", err, out)
	}
	unit := readFile(t, unitPath)
	const execStart = "ExecStart=/usr/local/bin/stickyseat "
	if strings.Count(unit, execStart) != 1 {
		t.Fatalf("%s: want one line starting %q", unitPath, execStart)
	}
	unit = strings.Replace(unit, execStart, "ExecStart="+stub+" ", 1)
	if out, err := verify("stickyseat.service", unit); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unitPath, err, out)
	}
}
