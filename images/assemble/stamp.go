package assemble

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vision-platform/vp/images/imagespec"
)

// Stamp is a fingerprint of everything a build of the named spec reads:
// the spec files (its own and its bases'), and the size, modification
// time, change time and inode of every input file (dir and file sources,
// the Go sources and module files of go layers, lock and requirements
// files and wheelhouse entries, root filesystem tarballs). It reads no
// file's content, so it costs a directory walk: the image builder answers
// from its record of the last build while the stamp is unchanged, and
// builds (which hashes what goes into the layers) when it moves.
//
// A stamp is not a proof of content (an edit that restores every one of
// those stat fields goes unseen, as with make); what a build puts into a
// layer is always checked against its hash.
func Stamp(specs map[string]*imagespec.Spec, name string) (string, error) {
	h := sha256.New()
	seen := map[string]bool{}
	if err := stampSpec(h, specs, name, seen); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func stampSpec(h io.Writer, specs map[string]*imagespec.Spec, name string, seen map[string]bool) error {
	if seen[name] {
		return nil
	}
	seen[name] = true
	s, ok := specs[name]
	if !ok {
		return fmt.Errorf("%w %q", ErrNoSpec, name)
	}
	if err := stampFile(h, s.File); err != nil {
		return err
	}
	switch {
	case s.Base.Spec != "":
		if err := stampSpec(h, specs, s.Base.Spec, seen); err != nil {
			return err
		}
	case s.Base.Rootfs != "":
		if err := stampFile(h, s.Resolve(s.Base.Rootfs)); err != nil {
			return err
		}
	case s.Base.Layout != "":
		if err := stampTree(h, s.Resolve(s.Base.Layout), nil); err != nil {
			return err
		}
	case s.Base.Image != "":
		fmt.Fprintf(h, "image %s\n", s.Base.Image)
	}
	for _, l := range s.Layers {
		var err error
		switch {
		case l.Dir != nil:
			err = stampTree(h, s.Resolve(l.Dir.Src), nil)
		case l.File != nil:
			err = stampFile(h, s.Resolve(l.File.Src))
		case l.Go != nil:
			err = stampGo(h, s, l.Go)
		case l.Wheels != nil:
			for _, f := range []string{l.Wheels.Lock, l.Wheels.Requirements} {
				if f == "" {
					continue
				}
				if err = stampFile(h, s.Resolve(f)); err != nil {
					break
				}
			}
			if err == nil && l.Wheels.Wheelhouse != "" {
				err = stampTree(h, s.Resolve(l.Wheels.Wheelhouse), nil)
			}
			fmt.Fprintf(h, "index %s\n", l.Wheels.Index)
		}
		if err != nil {
			return fmt.Errorf("%s: layer %s: %w", s.File, l.Name, err)
		}
	}
	return nil
}

// stampGo covers what go build reads: the module's Go files and its
// go.mod and go.sum (the module cache is content-addressed by go.sum).
func stampGo(h io.Writer, s *imagespec.Spec, g *imagespec.GoSource) error {
	dir := filepath.Dir(s.File)
	if g.Dir != "" {
		dir = s.Resolve(g.Dir)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			dir = d
			break
		}
		if filepath.Dir(d) == d {
			return fmt.Errorf("no go.mod above %s", dir)
		}
	}
	fmt.Fprintf(h, "go %s %s %v\n", g.Package, g.Dest, g.LDFlags)
	return stampTree(h, dir, func(p string) bool {
		b := filepath.Base(p)
		return strings.HasSuffix(b, ".go") || b == "go.mod" || b == "go.sum"
	})
}

// stampTree stamps every file under root that keep accepts (all when nil),
// skipping version control and build output directories.
func stampTree(h io.Writer, root string, keep func(string) bool) error {
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "__pycache__", "bin":
				if p != root {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if keep != nil && !keep(p) {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		lines = append(lines, p+" "+statKey(p, fi))
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(h, "missing %s\n", root)
		return nil
	}
	if err != nil {
		return fmt.Errorf("walking %s: %w", root, err)
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintln(h, l)
	}
	return nil
}

func stampFile(h io.Writer, p string) error {
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(h, "missing %s\n", p)
		return nil
	}
	if err != nil {
		return fmt.Errorf("stamping %s: %w", p, err)
	}
	fmt.Fprintf(h, "%s %s\n", p, statKey(p, fi))
	return nil
}
