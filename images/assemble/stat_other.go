//go:build !linux && !darwin

package assemble

import (
	"fmt"
	"os"
)

// statKey names a file's content by path, size and modification time only:
// this system's stat gives no change time here.
func statKey(path string, fi os.FileInfo) string {
	return fmt.Sprintf("%s|%d|%d", path, fi.Size(), fi.ModTime().UnixNano())
}
