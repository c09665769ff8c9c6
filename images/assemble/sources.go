package assemble

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
	"strconv"
	"strings"

	"github.com/vision-platform/vp/images/imagespec"
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

// dirEntries lists a dir source and its input key. A src that is a
// symlink is followed. A symlink inside that is absolute, or whose target,
// followed through the source's own symlinks, climbs above the source
// directory at any step, is refused; so is a chain of more than 40 links.
func (b *Builder) dirEntries(s *imagespec.Spec, d *imagespec.DirSource) ([]Entry, string, error) {
	root, err := filepath.EvalSymlinks(s.Resolve(d.Src))
	if err != nil {
		return nil, "", fmt.Errorf("dir.src: %w", err)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		if err == nil {
			err = fmt.Errorf("%s is not a directory", d.Src)
		}
		return nil, "", fmt.Errorf("dir.src: %w", err)
	}
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
	links := map[string]string{} // rel -> target
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
			links[rel] = target
			entries = append(entries, Entry{Path: dest, Type: tar.TypeSymlink, Linkname: target, From: from})
			keyParts = append(keyParts, "l|"+rel+"|"+target)
		case fi.Mode().IsRegular():
			sum, err := b.cache.FileSHA256(p)
			if err != nil {
				return err
			}
			abs := p
			entries = append(entries, Entry{Path: dest, Type: tar.TypeReg, Mode: int64(fi.Mode().Perm()), Size: fi.Size(), SHA256: sum,
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
	for rel, target := range links {
		if err := checkLink(rel, links); err != nil {
			return nil, "", fmt.Errorf("%s: %s: symlink to %q: %w", s.File, filepath.Join(root, filepath.FromSlash(rel)), target, err)
		}
	}
	sort.Strings(keyParts)
	return entries, Key(append([]string{"dir", d.Dest}, keyParts...)...), nil
}

// maxLinkHops bounds a chain of symlinks, as the kernel's ELOOP does.
const maxLinkHops = 40

// checkLink follows the symlink at rel (a slash path below the root)
// through links (rel -> target, every symlink of the tree) and fails when
// a target is absolute, when any step climbs above the root, or when the
// chain is longer than maxLinkHops. b -> a/.. with a -> . passes a lexical
// check (a/.. is the root) yet reaches the root's parent.
func checkLink(rel string, links map[string]string) error {
	hops := 0
	var follow func(dir []string, target string) ([]string, error)
	follow = func(dir []string, target string) ([]string, error) {
		if path.IsAbs(target) {
			return nil, fmt.Errorf("%w: absolute target", ErrUnsafeSymlink)
		}
		cur := append([]string(nil), dir...)
		for _, e := range strings.Split(target, "/") {
			switch e {
			case "", ".":
			case "..":
				if len(cur) == 0 {
					return nil, ErrUnsafeSymlink
				}
				cur = cur[:len(cur)-1]
			default:
				cur = append(cur, e)
				t, ok := links[strings.Join(cur, "/")]
				if !ok {
					continue
				}
				if hops++; hops > maxLinkHops {
					return nil, fmt.Errorf("%w: more than %d links in a chain", ErrUnsafeSymlink, maxLinkHops)
				}
				var err error
				if cur, err = follow(cur[:len(cur)-1], t); err != nil {
					return nil, err
				}
			}
		}
		return cur, nil
	}
	dir := strings.Split(rel, "/")
	_, err := follow(dir[:len(dir)-1], links[rel])
	return err
}

func normMode(m fs.FileMode) int64 {
	if m&0o111 != 0 {
		return 0o755
	}
	return 0o644
}

func (b *Builder) fileEntries(s *imagespec.Spec, f *imagespec.FileSource) ([]Entry, string, error) {
	p := s.Resolve(f.Src)
	fi, err := os.Stat(p)
	if err != nil {
		return nil, "", fmt.Errorf("file.src: %w", err)
	}
	mode := int64(fi.Mode().Perm())
	if f.Mode != "" {
		if mode, err = strconv.ParseInt(f.Mode, 8, 32); err != nil {
			return nil, "", fmt.Errorf("file.mode %q: %w", f.Mode, err)
		}
	}
	sum, err := b.cache.FileSHA256(p)
	if err != nil {
		return nil, "", fmt.Errorf("file.src: %w", err)
	}
	e := Entry{Path: f.Dest, Type: tar.TypeReg, Mode: mode, Size: fi.Size(), SHA256: sum,
		Open: func() (io.ReadCloser, error) { return os.Open(p) }, From: s.File + ": " + p}
	return []Entry{e}, Key("file", f.Dest, fmt.Sprintf("%o", normMode(fs.FileMode(mode))), sum), nil
}

// goEntries builds a Go main package for one platform the way ko does:
// CGO_ENABLED=0, -trimpath, no build id, so the same source gives the same
// bytes on any machine.
func (b *Builder) goEntries(ctx context.Context, s *imagespec.Spec, g *imagespec.GoSource, platform string) ([]Entry, string, error) {
	osName, arch, _ := strings.Cut(platform, "/")
	arch, variant, _ := strings.Cut(arch, "/")
	dir := filepath.Dir(s.File)
	if g.Dir != "" {
		dir = s.Resolve(g.Dir)
	}
	tmp, err := os.MkdirTemp(b.cache.dir, ".go-build-*")
	if err != nil {
		return nil, "", fmt.Errorf("making build directory: %w", err)
	}
	b.onCleanup(func() { os.RemoveAll(tmp) })
	out := filepath.Join(tmp, path.Base(g.Dest))
	ldflags := append([]string{"-s", "-w", "-buildid="}, g.LDFlags...)
	cmd := exec.CommandContext(ctx, b.goTool, "build", "-trimpath", "-buildvcs=false", "-ldflags", strings.Join(ldflags, " "), "-o", out, g.Package)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+osName, "GOARCH="+arch, "GOFLAGS=-mod=readonly")
	if variant != "" && arch == "arm" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(variant, "v"))
	}
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("go build %s for %s: %w\n%s", g.Package, platform, err, msg)
	}
	sum, n, err := fileSum(out)
	if err != nil {
		return nil, "", err
	}
	e := Entry{Path: g.Dest, Type: tar.TypeReg, Mode: 0o755, Size: n, SHA256: sum,
		Open: func() (io.ReadCloser, error) { return os.Open(out) }, From: s.File + ": go " + g.Package}
	return []Entry{e}, Key("go", g.Dest, sum), nil
}

// fileSum is the hex sha256 and size of a file.
func fileSum(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, fmt.Errorf("hashing: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hashing %s: %w", p, err)
	}
	return hexSum(h), n, nil
}

// copyChecked copies the file at p to w, failing with ErrChanged unless
// what was copied has the hex sha256 want.
func copyChecked(w io.Writer, p, want string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("opening %s: %w", p, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(io.MultiWriter(w, h), struct{ io.Reader }{f}, make([]byte, 1<<20)); err != nil {
		return fmt.Errorf("copying %s: %w", p, err)
	}
	if got := hexSum(h); got != want {
		return fmt.Errorf("%s: %w (sha256 %s, expected %s)", p, ErrChanged, got, want)
	}
	return nil
}
