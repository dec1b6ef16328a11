package haproxybin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeBin writes an executable file named name into dir.
func fakeBin(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestListReadsEveryBinary(t *testing.T) {
	dir := t.TempDir()
	a, b := fakeBin(t, dir, "haproxy-2.8.0"), fakeBin(t, dir, "haproxy-3.4.0")
	t.Setenv("PATH", dir)
	t.Setenv(Env, " haproxy-2.8.0 \t"+b+" ")
	got, err := List()
	if err != nil {
		t.Fatalf("List() error: %v", err)
	}
	if want := []string{a, b}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("List() = %q; want %q (every listed binary, in order, as absolute paths)", got, want)
	}
}

func TestListRefusesAMissingBinary(t *testing.T) {
	dir := t.TempDir()
	fakeBin(t, dir, "haproxy")
	t.Setenv("PATH", dir)
	t.Setenv(Env, "haproxy "+filepath.Join(dir, "haproxy-9.9"))
	if got, err := List(); err == nil || !strings.Contains(err.Error(), "haproxy-9.9") {
		t.Errorf("List() = %q, %v; want an error naming haproxy-9.9", got, err)
	}
}

func TestListDefaultsToPath(t *testing.T) {
	dir := t.TempDir()
	p := fakeBin(t, dir, "haproxy")
	t.Setenv("PATH", dir)
	t.Setenv(Env, "")
	if got, err := List(); err != nil || len(got) != 1 || got[0] != p {
		t.Errorf("List() = %q, %v; want [%q]", got, err, p)
	}
}
