package build

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/vision-platform/vp/images/spec"
)

// globRE compiles a glob over slash paths: ** spans directories, * and ?
// stay within one.
func globRE(g string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(g); i++ {
		switch c := g[i]; {
		case strings.HasPrefix(g[i:], "**/"):
			b.WriteString("(.*/)?")
			i += 2
		case strings.HasPrefix(g[i:], "**"):
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

func compileGlobs(gs []string) ([]*regexp.Regexp, error) {
	out := make([]*regexp.Regexp, len(gs))
	for i, g := range gs {
		re, err := globRE(g)
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", g, err)
		}
		out[i] = re
	}
	return out, nil
}

func matchAny(res []*regexp.Regexp, p string) bool {
	for _, re := range res {
		if re.MatchString(p) {
			return true
		}
	}
	return false
}

// dirEntries lists a dir source and its input key. A symlink that is
// absolute or leads out of the source directory is refused.
func (b *Builder) dirEntries(s *spec.Spec, d *spec.DirSource) ([]Entry, string, error) {
	root := s.Resolve(d.Src)
	inc, err := compileGlobs(d.Include)
	if err != nil {
		return nil, "", err
	}
	exc, err := compileGlobs(d.Exclude)
	if err != nil {
		return nil, "", err
	}
	var entries []Entry
	var keyParts []string
	err = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if matchAny(exc, rel) {
			if de.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if de.IsDir() {
			return nil
		}
		if len(inc) > 0 && !matchAny(inc, rel) {
			return nil
		}
		dest := path.Join(d.Dest, rel)
		from := fmt.Sprintf("%s: %s", s.File, p)
		fi, err := de.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if path.IsAbs(target) {
				return fmt.Errorf("%s: symlink to absolute path %q escapes its root", from, target)
			}
			if t := path.Join(path.Dir(rel), target); t == ".." || strings.HasPrefix(t, "../") {
				return fmt.Errorf("%s: symlink to %q escapes its root", from, target)
			}
			entries = append(entries, Entry{Path: dest, Type: tar.TypeSymlink, Linkname: target, From: from})
			keyParts = append(keyParts, "l|"+rel+"|"+target)
		case fi.Mode().IsRegular():
			sum, err := b.cache.FileSHA256(p)
			if err != nil {
				return err
			}
			abs := p
			entries = append(entries, Entry{Path: dest, Type: tar.TypeReg, Mode: int64(fi.Mode().Perm()), Size: fi.Size(),
				Open: func() (io.ReadCloser, error) { return os.Open(abs) }, From: from})
			keyParts = append(keyParts, fmt.Sprintf("f|%s|%o|%d|%s", rel, normMode(fi.Mode().Perm()), fi.Size(), sum))
		default:
			return fmt.Errorf("%s: %s is not a regular file, directory or symlink", from, fi.Mode().Type())
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	sort.Strings(keyParts)
	return entries, Key(append([]string{"dir", d.Dest}, keyParts...)...), nil
}

func normMode(m fs.FileMode) int64 {
	if m&0o111 != 0 {
		return 0o755
	}
	return 0o644
}

func (b *Builder) fileEntries(s *spec.Spec, f *spec.FileSource) ([]Entry, string, error) {
	p := s.Resolve(f.Src)
	fi, err := os.Stat(p)
	if err != nil {
		return nil, "", err
	}
	mode := int64(fi.Mode().Perm())
	if f.Mode != "" {
		fmt.Sscanf(f.Mode, "%o", &mode)
	}
	sum, err := b.cache.FileSHA256(p)
	if err != nil {
		return nil, "", err
	}
	e := Entry{Path: f.Dest, Type: tar.TypeReg, Mode: mode, Size: fi.Size(),
		Open: func() (io.ReadCloser, error) { return os.Open(p) }, From: s.File + ": " + p}
	return []Entry{e}, Key("file", f.Dest, fmt.Sprintf("%o", normMode(fs.FileMode(mode))), sum), nil
}

// goEntries builds a Go main package for one platform the way ko does:
// CGO_ENABLED=0, -trimpath, no build id, so the same source gives the same
// bytes on any machine.
func (b *Builder) goEntries(ctx context.Context, s *spec.Spec, g *spec.GoSource, platform string) ([]Entry, string, error) {
	osName, arch, _ := strings.Cut(platform, "/")
	arch, variant, _ := strings.Cut(arch, "/")
	dir := filepath.Dir(s.File)
	if g.Dir != "" {
		dir = s.Resolve(g.Dir)
	}
	tmp, err := os.MkdirTemp(b.cache.dir, ".go-build-*")
	if err != nil {
		return nil, "", err
	}
	b.cleanup = append(b.cleanup, func() { os.RemoveAll(tmp) })
	out := filepath.Join(tmp, path.Base(g.Dest))
	ldflags := append([]string{"-s", "-w", "-buildid="}, g.LDFlags...)
	cmd := exec.CommandContext(ctx, b.goTool, "build", "-trimpath", "-buildvcs=false", "-ldflags", strings.Join(ldflags, " "), "-o", out, g.Package)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+osName, "GOARCH="+arch, "GOFLAGS=-mod=readonly")
	if variant != "" && arch == "arm" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(variant, "v"))
	}
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("%s: go build %s for %s: %v\n%s", s.File, g.Package, platform, err, msg)
	}
	f, err := os.Open(out)
	if err != nil {
		return nil, "", err
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	f.Close()
	if err != nil {
		return nil, "", err
	}
	e := Entry{Path: g.Dest, Type: tar.TypeReg, Mode: 0o755, Size: n,
		Open: func() (io.ReadCloser, error) { return os.Open(out) }, From: s.File + ": go " + g.Package}
	return []Entry{e}, Key("go", g.Dest, hexSum(h)), nil
}
