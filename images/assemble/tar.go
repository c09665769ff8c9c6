package assemble

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
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
	// SHA256, when set, is the hex sha256 the layer's cache key was
	// computed on: content that differs as it is written fails the layer
	// with ErrChanged.
	SHA256 string
	// From says where the entry came from, for error messages.
	From string
}

// pathEntry is one path a layer writes.
type pathEntry struct {
	Path string `json:"p"`
	Dir  bool   `json:"d,omitempty"`
}

// planTar adds the parent directories of entries and orders them by path.
// Two entries with the same path are an error naming both, unless both are
// directories.
func planTar(entries []Entry) ([]Entry, error) {
	all := make(map[string]Entry, len(entries))
	for _, e := range entries {
		p := path.Clean(e.Path)
		if !path.IsAbs(p) || p == "/" {
			return nil, fmt.Errorf("%s: %q is not an absolute path below /", e.From, e.Path)
		}
		if prev, dup := all[p]; dup {
			if prev.Type == tar.TypeDir && e.Type == tar.TypeDir {
				continue
			}
			return nil, fmt.Errorf("%w: %s: from %s and from %s", ErrPathConflict, p, prev.From, e.From)
		}
		e.Path = p
		all[p] = e
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if prev, ok := all[d]; ok {
				if prev.Type != tar.TypeDir {
					return nil, fmt.Errorf("%w: %s is a file (from %s) and a directory (for %s)", ErrPathConflict, d, prev.From, e.From)
				}
				continue
			}
			all[d] = Entry{Path: d, Type: tar.TypeDir, Mode: 0o755, From: "parent of " + p}
		}
	}
	out := make([]Entry, 0, len(all))
	for _, e := range all {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// writeTar writes entries as a reproducible tar stream: sorted by path,
// parent directories added, uid/gid 0, mtime epoch, modes normalised to
// 0755/0644. It returns the paths written.
func writeTar(w io.Writer, entries []Entry, epoch time.Time) ([]pathEntry, error) {
	planned, err := planTar(entries)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(w)
	// Large reads: each read is a system call, and they are not cheap.
	buf := make([]byte, 1<<20)
	paths := make([]pathEntry, 0, len(planned))
	for _, e := range planned {
		if err := writeEntry(tw, e, epoch, buf); err != nil {
			return nil, err
		}
		paths = append(paths, pathEntry{Path: e.Path, Dir: e.Type == tar.TypeDir})
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing tar: %w", err)
	}
	return paths, nil
}

func writeEntry(tw *tar.Writer, e Entry, epoch time.Time, buf []byte) error {
	p := e.Path
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
		return nil
	}
	if e.Open == nil {
		if _, err := tw.Write(e.Data); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		return nil
	}
	rc, err := e.Open()
	if err != nil {
		return fmt.Errorf("%s: %w", e.From, err)
	}
	defer rc.Close()
	var dst io.Writer = tw
	var sum hash.Hash
	if e.SHA256 != "" {
		sum = sha256.New()
		dst = io.MultiWriter(tw, sum)
	}
	n, err := io.CopyBuffer(dst, struct{ io.Reader }{rc}, buf)
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if n != e.Size {
		return fmt.Errorf("%s: %s: %w (%d bytes, expected %d)", e.From, p, ErrChanged, n, e.Size)
	}
	if sum != nil {
		if got := hex.EncodeToString(sum.Sum(nil)); got != e.SHA256 {
			return fmt.Errorf("%s: %s: %w (sha256 %s, expected %s)", e.From, p, ErrChanged, got, e.SHA256)
		}
	}
	return nil
}
