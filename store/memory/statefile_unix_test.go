//go:build unix

package memory_test

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stickyseat/stickyseat/store/memory"
)

// TestRemoveTempFiles: at start the temporary files a crashed save left are removed, and
// only those: the state file's own <name>.tmp-<digits> regular files of this user, never
// another name, a link (nor its target), a directory, or another user's file.
func TestRemoveTempFiles(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "seats.state")
	write := func(name string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"seats.state", "seats.state.tmp-123", "seats.state.tmp-4567890", "seats.state.tmp-abc",
		"seats.state.tmp-", "other.state.tmp-1", "seats.state.bad-1700000000", "target"} {
		write(name)
	}
	if err := os.Symlink(filepath.Join(dir, "target"), filepath.Join(dir, "seats.state.tmp-77")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "seats.state.tmp-88"), 0o700); err != nil {
		t.Fatal(err)
	}
	want := []string{"other.state.tmp-1", "seats.state", "seats.state.bad-1700000000", "seats.state.tmp-", "seats.state.tmp-77", "seats.state.tmp-88", "seats.state.tmp-abc", "target"}
	wantRemoved := 2
	if os.Geteuid() == 0 {
		write("seats.state.tmp-99")
		if err := os.Lchown(filepath.Join(dir, "seats.state.tmp-99"), 65534, 65534); err != nil {
			t.Fatal(err)
		}
		want = append(want, "seats.state.tmp-99")
		sort.Strings(want)
	}
	n, err := memory.RemoveTempFiles(state)
	if err != nil || n != wantRemoved {
		t.Errorf("RemoveTempFiles = %d, %v; want %d, nil", n, err, wantRemoved)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("left in the directory:\n %s\nwant\n %s", strings.Join(got, " "), strings.Join(want, " "))
	}
}
