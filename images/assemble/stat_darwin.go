package assemble

import (
	"fmt"
	"os"
	"syscall"
)

// statKey names a file's content as far as its stat can tell: path, size,
// modification and change times, device and inode.
func statKey(path string, fi os.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Sprintf("%s|%d|%d", path, fi.Size(), fi.ModTime().UnixNano())
	}
	return fmt.Sprintf("%s|%d|%d|%d.%09d|%d|%d", path, fi.Size(), fi.ModTime().UnixNano(), st.Ctimespec.Sec, st.Ctimespec.Nsec, st.Dev, st.Ino)
}
