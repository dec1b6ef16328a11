// Package haproxybin finds the haproxy binaries the tests, the demo and the benchmarks run,
// so that every one of them reads HAPROXY_BINS the same way.
package haproxybin

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Env is the variable listing the binaries, space separated, e.g.
// HAPROXY_BINS="haproxy /opt/haproxy-3.4.0/haproxy".
const Env = "HAPROXY_BINS"

// List returns the haproxy binaries named in HAPROXY_BINS, each resolved to an absolute
// path, or, when it is empty, the haproxy on PATH (or /usr/sbin/haproxy, where Debian puts
// it, often off a user's PATH). A listed binary that cannot be found is an error: a test run
// that silently drops one would claim a version it never ran.
func List() ([]string, error) {
	names := strings.Fields(os.Getenv(Env))
	if len(names) == 0 {
		p, err := find("haproxy")
		if err != nil {
			return nil, errors.New("haproxy not found (install it: apt-get install haproxy, or set " + Env + ")")
		}
		return []string{p}, nil
	}
	bins := make([]string, 0, len(names))
	for _, n := range names {
		p, err := find(n)
		if err != nil {
			return nil, fmt.Errorf("%s names %q: %w", Env, n, err)
		}
		bins = append(bins, p)
	}
	return bins, nil
}

// find resolves name like exec.LookPath, with /usr/sbin as a last resort for a bare name.
func find(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil && !strings.Contains(name, "/") {
		var sbinErr error
		if p, sbinErr = exec.LookPath("/usr/sbin/" + name); sbinErr == nil {
			err = nil
		}
	}
	if err != nil {
		return "", err
	}
	return filepath.Abs(p)
}

// ForTest returns List's binaries for a test that runs HAProxy. With none found it fails the
// test when CI=true (CI must never pass by skipping) and skips it elsewhere.
func ForTest(t testing.TB) []string {
	t.Helper()
	bins, err := List()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v", err)
		}
		t.Skip(err)
	}
	return bins
}
