package build

import (
	"archive/tar"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"
)

// Entry is one file, directory or symlink of a layer.
type Entry struct {
	// Path inside the image, absolute ("/opt/vp/bin/agent").
	Path     string
	Mode     int64 // permission bits; normalised on write
	Type     byte  // tar.TypeReg, tar.TypeDir or tar.TypeSymlink
	Linkname string
	Size     int64
	// Open returns the content of a regular file (Data when nil).
	Open func() (io.ReadCloser, error)
	Data []byte
	// From says where the entry came from, for error messages.
	From string
}

// writeTar writes entries as a reproducible tar stream: sorted by path,
// parent directories added, uid/gid 0, mtime epoch, modes normalised to
// 0755/0644. Two entries with the same path are an error naming both.
func writeTar(w io.Writer, entries []Entry, epoch time.Time) error {
	all := make(map[string]Entry, len(entries))
	for _, e := range entries {
		p := path.Clean(e.Path)
		if !path.IsAbs(p) || p == "/" {
			return fmt.Errorf("%s: %q is not an absolute path below /", e.From, e.Path)
		}
		if prev, dup := all[p]; dup {
			if prev.Type == tar.TypeDir && e.Type == tar.TypeDir {
				continue
			}
			return fmt.Errorf("duplicate path %s: from %s and from %s", p, prev.From, e.From)
		}
		e.Path = p
		all[p] = e
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if prev, ok := all[d]; ok {
				if prev.Type != tar.TypeDir {
					return fmt.Errorf("%s is a file (from %s) and a directory (for %s)", d, prev.From, e.From)
				}
				continue
			}
			all[d] = Entry{Path: d, Type: tar.TypeDir, Mode: 0o755, From: "parent of " + p}
		}
	}
	paths := make([]string, 0, len(all))
	for p := range all {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	// Large reads: each read is a system call, and they are not cheap.
	buf := make([]byte, 1<<20)
	for _, p := range paths {
		e := all[p]
		h := &tar.Header{
			Name:     strings.TrimPrefix(p, "/"),
			ModTime:  epoch,
			Typeflag: e.Type,
			Format:   tar.FormatPAX,
		}
		switch e.Type {
		case tar.TypeDir:
			h.Name += "/"
			h.Mode = 0o755
		case tar.TypeSymlink:
			h.Mode = 0o777
			h.Linkname = e.Linkname
		case tar.TypeReg:
			h.Mode = 0o644
			if e.Mode&0o111 != 0 {
				h.Mode = 0o755
			}
			h.Size = e.Size
			if e.Open == nil {
				h.Size = int64(len(e.Data))
			}
		default:
			return fmt.Errorf("%s: %s: unsupported entry type %q", e.From, p, e.Type)
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		if e.Type != tar.TypeReg {
			continue
		}
		if e.Open == nil {
			if _, err := tw.Write(e.Data); err != nil {
				return fmt.Errorf("writing %s: %w", p, err)
			}
			continue
		}
		rc, err := e.Open()
		if err != nil {
			return fmt.Errorf("%s: %w", e.From, err)
		}
		n, err := io.CopyBuffer(tw, struct{ io.Reader }{rc}, buf)
		rc.Close()
		if err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		if n != e.Size {
			return fmt.Errorf("%s: %s changed while being read (%d bytes, expected %d)", e.From, p, n, e.Size)
		}
	}
	return tw.Close()
}
