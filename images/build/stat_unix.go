//go:build unix

package build

import (
	"fmt"
	"os"
	"syscall"
)

func statKey(path string, fi os.FileInfo) string {
	ino := uint64(0)
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf("%s|%d|%d|%d", path, fi.Size(), fi.ModTime().UnixNano(), ino)
}
