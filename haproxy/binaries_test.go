package haproxy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// haproxyBins returns the haproxy binaries to test against: the space-separated list in
// HAPROXY_BINS, else "haproxy" on PATH (or /usr/sbin/haproxy, which is often off a user's
// PATH). With none found the test fails when CI=true and is skipped otherwise.
func haproxyBins(t *testing.T) []string {
	t.Helper()
	var bins []string
	if env := strings.Fields(os.Getenv("HAPROXY_BINS")); len(env) > 0 {
		for _, b := range env {
			path, err := exec.LookPath(b)
			if err != nil {
				t.Fatalf("HAPROXY_BINS names %q: %v", b, err)
			}
			bins = append(bins, path)
		}
		return bins
	}
	for _, b := range []string{"haproxy", "/usr/sbin/haproxy"} {
		if path, err := exec.LookPath(b); err == nil {
			return []string{path}
		}
	}
	const msg = "no haproxy binary: install haproxy (2.6+) or set HAPROXY_BINS to a space-separated list of binaries"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return nil
}

// binName names a subtest after a binary, its directory included so that several builds
// called "haproxy" stay apart.
func binName(bin string) string {
	return strings.TrimPrefix(filepath.ToSlash(bin), "/")
}

// checkConfig runs `bin -c -f cfg` in dir and fails the test unless HAProxy accepts the
// file without a single warning.
func checkConfig(t *testing.T, bin, dir, cfg string) {
	t.Helper()
	cmd := exec.Command(bin, "-c", "-f", cfg)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("[WARNING]")) || bytes.Contains(out, []byte("[ALERT]")) {
		body, readErr := os.ReadFile(filepath.Join(dir, cfg))
		if readErr != nil {
			body = []byte(readErr.Error())
		}
		t.Errorf("%s -c -f %s (in %s): %v\n%s\n--- config ---\n%s", bin, cfg, dir, err, out, body)
	}
}
