package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runCI runs a copy of .ci/run in a scratch clone under root (root/repo), with fake make
// and haproxy programs first on PATH, and returns the make calls it made, one line each:
// "<args>|<HAPROXY_BINS>|<CI>".
func runCI(t *testing.T, root string) []string {
	t.Helper()
	script, err := os.ReadFile("../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(root, "repo")
	fake := filepath.Join(root, "fakebin")
	for _, d := range []string{filepath.Join(repo, ".ci"), fake} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(repo, ".ci", "run"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(root, "make.log")
	writeExec(t, filepath.Join(fake, "make"), "#!/bin/sh\necho \"$*|$HAPROXY_BINS|$CI\" >> "+log+"\n")
	writeExec(t, filepath.Join(fake, "haproxy"), "#!/bin/sh\n")
	cmd := exec.Command("bash", filepath.Join(repo, ".ci", "run"))
	cmd.Env = append(os.Environ(), "PATH="+fake+":/usr/bin:/bin", "CI=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf(".ci/run: %v\n%s", err, out)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func writeExec(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestCIRunsEveryHAProxy checks that .ci/run hands make test Debian's haproxy plus every
// build in ../shared/haproxy/, and runs the fault suite on Debian's and the newest build.
func TestCIRunsEveryHAProxy(t *testing.T) {
	root := t.TempDir()
	shared := filepath.Join(root, "shared", "haproxy")
	if err := os.MkdirAll(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"3.10.0", "2.8.0", "3.4.0"} {
		writeExec(t, filepath.Join(shared, "haproxy-"+v), "#!/bin/sh\n")
	}
	if err := os.WriteFile(filepath.Join(shared, "README.md"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	debian := filepath.Join(root, "fakebin", "haproxy")
	b := func(v string) string { return filepath.Join(shared, "haproxy-"+v) }
	all := strings.Join([]string{debian, b("2.8.0"), b("3.4.0"), b("3.10.0")}, " ")
	want := []string{
		"test|" + all + "|true",
		"test-faults HAPROXY=" + debian + "|" + all + "|true",
		"test-faults HAPROXY=" + b("3.10.0") + "|" + all + "|true",
	}
	if got := runCI(t, root); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf(".ci/run ran make as\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestCIWithoutSharedBuilds checks that .ci/run still runs on Debian's haproxy alone when
// there is no ../shared/haproxy/.
func TestCIWithoutSharedBuilds(t *testing.T) {
	root := t.TempDir()
	debian := filepath.Join(root, "fakebin", "haproxy")
	want := []string{
		"test|" + debian + "|true",
		"test-faults HAPROXY=" + debian + "|" + debian + "|true",
	}
	if got := runCI(t, root); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf(".ci/run ran make as\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
