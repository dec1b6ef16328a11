//go:build unix

package memory_test

import (
	"path/filepath"
	"syscall"
	"testing"
)

// TestStateFileModeUnderUmask: the file is 0600 even when the umask would make it
// unreadable to its owner, so a restart can load it.
func TestStateFileModeUnderUmask(t *testing.T) {
	f := stateFixture(t)
	path := filepath.Join(t.TempDir(), "seats.state")
	old := syscall.Umask(0o277)
	_, err := f.store.SaveFile(path)
	syscall.Umask(old)
	if err != nil {
		t.Fatalf("SaveFile: %v", err)
	}
	checkStateFile(t, path, f.clock.Now)
}
