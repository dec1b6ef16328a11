package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// root is the repository root, relative to this package's directory (where go test runs).
const root = ".."

// readFile returns the file at path, relative to the repository root.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lookTool finds a program on PATH or in /usr/sbin and /usr/bin (often off a user's PATH).
// Without it the test fails when CI=true, where make deps installs it, and is skipped
// otherwise, with the install hint.
func lookTool(t *testing.T, prog, hint string) string {
	t.Helper()
	for _, p := range []string{prog, "/usr/sbin/" + prog, "/usr/bin/" + prog} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	msg := "no " + prog + " (" + hint + ")"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
