package haproxy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stickyseat/stickyseat/internal/haproxybin"
)

// haproxyBins returns the haproxy binaries to test against (HAPROXY_BINS, else haproxy on
// PATH or in /usr/sbin). With none found the test fails when CI=true and is skipped otherwise.
func haproxyBins(t *testing.T) []string { return haproxybin.ForTest(t) }

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
