//go:build unix

package memory

import (
	"os"
	"syscall"
)

// ownedBySelf reports whether info's file belongs to this process's user.
func ownedBySelf(info os.FileInfo) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}
