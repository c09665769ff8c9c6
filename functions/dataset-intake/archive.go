package datasetintake

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/dataset"
	"github.com/vision-platform/vp/internal/objstore"
)

// Limits bound what one archive may unpack to.
type Limits struct {
	// MaxSize is the largest archive taken, in bytes as stored.
	MaxSize int64
	// MaxBytes bounds the total size of the files it unpacks to.
	MaxBytes int64
	// MaxEntries bounds its entries: files, folders and the rest.
	MaxEntries int
	// MaxRatio bounds how many times larger than the archive its files
	// may be, and each zip entry than its compressed bytes: a zip bomb
	// compresses a thousandfold and more, images and labels much less.
	// It applies from ratioFloor bytes up.
	MaxRatio int
}

// DefaultLimits are the limits unless configured otherwise: what one
// notification can unpack within its deadline.
var DefaultLimits = Limits{MaxSize: 256 << 20, MaxBytes: 1 << 30, MaxEntries: 20_000, MaxRatio: 100}

func (l Limits) check() error {
	if l.MaxSize < 1 || l.MaxBytes < 1 || l.MaxEntries < 1 || l.MaxRatio < 1 {
		return fmt.Errorf("archive limits %+v: each must be at least 1", l)
	}
	return nil
}

const (
	// ratioFloor is the size under which the ratio is not checked: a
	// small file of zeros compresses well and harms nobody.
	ratioFloor = 1 << 20
	// maxSpecSize bounds a dataset.yaml.
	maxSpecSize = 1 << 20
	// maxArchiveProblems bounds the problems one rejection lists.
	maxArchiveProblems = 50
	// inMemory is the largest entry read whole before it is stored, so
	// that several are stored at once.
	inMemory = 8 << 20
	// putParallel is how many objects are stored or read at once.
	putParallel = 4
)

// Archive kinds.
const (
	kindZip   = "zip"
	kindTarGz = "tar.gz"
)

// archiveKind says whether key names an archive the intake unpacks, of
// which kind, and the name the dataset's prefix takes from it.
func archiveKind(key string) (kind, stem string, ok bool) {
	base := path.Base(key)
	lower := strings.ToLower(base)
	for _, s := range []struct{ suffix, kind string }{{".zip", kindZip}, {".tar.gz", kindTarGz}, {".tgz", kindTarGz}} {
		if strings.HasSuffix(lower, s.suffix) {
			stem := base[:len(base)-len(s.suffix)]
			return s.kind, stem, stem != "" && !strings.HasPrefix(stem, ".")
		}
	}
	return "", "", false
}

// entryType is what an entry would make on a file system.
type entryType int

const (
	typeFile entryType = iota
	typeDir
	typeSymlink
	typeHardlink
	typeSpecial // devices, FIFOs, sockets, sparse files, unknown types
	typeSkip    // tar's global PAX header: metadata, not an entry
)

// member is one file of the archive to store.
type member struct {
	index int    // its place among the archive's entries
	name  string // as the archive spells it
	path  string // relative to the dataset's prefix
	size  int64
	zf    *zip.File
}

// plan is an archive that passed every check: the files to store.
type plan struct {
	kind  string
	files []member // archive order, dataset.yaml last
	total int64
	spec  *member
}

// problems collects an archive's problems, up to maxArchiveProblems.
type problems struct {
	list    []events.FieldError
	dropped int
}

func (p *problems) add(field, format string, args ...any) {
	if len(p.list) >= maxArchiveProblems {
		p.dropped++
		return
	}
	p.list = append(p.list, events.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

func (p *problems) result(label string) []events.FieldError {
	if p.dropped > 0 {
		return append(p.list, events.FieldError{Field: label, Reason: fmt.Sprintf("%d more problems not listed", p.dropped)})
	}
	return p.list
}

// cleanName checks an entry's name and returns its path relative to the
// archive's root ("" for the root itself), or why the name is refused.
func cleanName(name string) (string, string) {
	switch {
	case strings.ContainsRune(name, 0):
		return "", "a NUL character in the name"
	case strings.Contains(name, `\`):
		return "", `a backslash in the name (archive paths use '/')`
	case strings.HasPrefix(name, "/"):
		return "", "an absolute path"
	case len(name) >= 2 && name[1] == ':' && (name[0]|0x20 >= 'a' && name[0]|0x20 <= 'z'):
		return "", "a drive letter (an absolute Windows path)"
	}
	p := name
	for strings.HasPrefix(p, "./") {
		p = p[2:]
	}
	p = strings.TrimSuffix(p, "/")
	if p == "" || p == "." {
		return "", ""
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return "", "climbs out of the archive with '..'"
		}
	}
	if !fs.ValidPath(p) {
		return "", "not a clean relative path (empty or '.' elements)"
	}
	return p, ""
}

func zipType(zf *zip.File) entryType {
	m := zf.Mode()
	switch {
	case m&fs.ModeSymlink != 0:
		return typeSymlink
	case m.IsDir():
		return typeDir
	case m&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket|fs.ModeIrregular) != 0:
		return typeSpecial
	}
	return typeFile
}

func tarType(h *tar.Header) entryType {
	switch h.Typeflag {
	case tar.TypeReg, '\x00': // '\x00' is what old tar writers set for a regular file
		return typeFile
	case tar.TypeDir:
		return typeDir
	case tar.TypeSymlink:
		return typeSymlink
	case tar.TypeLink:
		return typeHardlink
	case tar.TypeXGlobalHeader:
		return typeSkip
	}
	return typeSpecial
}

// checker checks the entries of one archive as they are read.
type checker struct {
	label   string // the archive's name, for problems of the whole archive
	limits  Limits
	size    int64 // the archive's size
	p       problems
	entries int
	total   int64
	files   []member
	seen    map[string]bool // every path an entry names
	isFile  map[string]bool
	stop    bool // a limit was passed: no point reading on
}

func newChecker(label string, size int64, l Limits) *checker {
	return &checker{label: label, limits: l, size: size, seen: map[string]bool{}, isFile: map[string]bool{}}
}

// entry checks one entry; zf is set for a zip entry. compressed is the
// entry's compressed size, -1 when the format does not say.
func (c *checker) entry(index int, name string, typ entryType, size, compressed int64, linkTarget string, zf *zip.File) {
	if typ == typeSkip {
		return
	}
	if c.entries++; c.entries > c.limits.MaxEntries {
		c.p.add(c.label, "more than %d entries", c.limits.MaxEntries)
		c.stop = true
		return
	}
	p, why := cleanName(name)
	if why != "" {
		c.p.add(name, "%s", why)
		return
	}
	if p == "" || strings.SplitN(p, "/", 2)[0] == "__MACOSX" {
		return // the root folder; macOS's resource forks
	}
	switch typ {
	case typeSymlink:
		c.p.add(name, "a symbolic link (to %q): links are not unpacked", linkTarget)
		return
	case typeHardlink:
		c.p.add(name, "a hard link (to %q): links are not unpacked", linkTarget)
		return
	case typeSpecial:
		c.p.add(name, "not a regular file or folder (a device, FIFO, socket or sparse file)")
		return
	}
	if c.seen[p] {
		c.p.add(name, "listed twice")
		return
	}
	c.seen[p] = true
	if typ == typeDir {
		return
	}
	if size < 0 {
		c.p.add(name, "a negative size")
		return
	}
	if _, _, ok := archiveKind(p); ok {
		// Its notification would come before the dataset.yaml's and unpack
		// it in turn: archives of archives could multiply without end.
		c.p.add(name, "an archive inside the archive: nested archives are not unpacked")
		return
	}
	if c.total += size; c.total > c.limits.MaxBytes {
		c.p.add(c.label, "unpacks to more than %d bytes", c.limits.MaxBytes)
		c.stop = true
		return
	}
	if compressed >= 0 && size > ratioFloor && (compressed == 0 || size/compressed > int64(c.limits.MaxRatio)) {
		c.p.add(name, "expands from %d to %d bytes, more than %d times (a zip bomb?)", compressed, size, c.limits.MaxRatio)
		return
	}
	c.isFile[p] = true
	c.files = append(c.files, member{index: index, name: name, path: p, size: size, zf: zf})
}

// finish checks the archive as a whole and makes the plan.
func (c *checker) finish(kind string) (*plan, []events.FieldError) {
	if c.stop || len(c.p.list) > 0 {
		return nil, c.p.result(c.label)
	}
	for _, m := range c.files {
		for d := path.Dir(m.path); d != "."; d = path.Dir(d) {
			if c.isFile[d] {
				c.p.add(m.name, "%s is a file of the archive as well as a folder", d)
			}
		}
	}
	if c.total > ratioFloor && c.total/max(c.size, 1) > int64(c.limits.MaxRatio) {
		c.p.add(c.label, "expands from %d to %d bytes, more than %d times (a zip bomb?)", c.size, c.total, c.limits.MaxRatio)
	}
	if len(c.p.list) > 0 {
		return nil, c.p.result(c.label)
	}
	// An archive of a folder holds the folder: its one top folder is the
	// dataset when dataset.yaml is in it.
	strip := ""
	if !c.isFile[dataset.SpecName] && len(c.files) > 0 {
		top, _, _ := strings.Cut(c.files[0].path, "/")
		one := true
		for _, m := range c.files {
			if !strings.HasPrefix(m.path, top+"/") {
				one = false
				break
			}
		}
		if one && c.isFile[top+"/"+dataset.SpecName] {
			strip = top + "/"
		}
	}
	pl := &plan{kind: kind}
	for _, m := range c.files {
		m.path = strings.TrimPrefix(m.path, strip)
		switch m.path {
		case dataset.ManifestName:
			continue // the intake writes the dataset's own
		case dataset.SpecName:
			if m.size > maxSpecSize {
				c.p.add(m.name, "dataset.yaml is over %d bytes", maxSpecSize)
			}
			spec := m
			pl.spec = &spec
			continue
		}
		pl.files = append(pl.files, m)
		pl.total += m.size
	}
	if pl.spec == nil {
		c.p.add(c.label, "no %s at the archive's root (nor in its one top folder): an archive holds one dataset, described by its %s", dataset.SpecName, dataset.SpecName)
	}
	if len(pl.files) == 0 {
		c.p.add(c.label, "no data files")
	}
	if len(c.p.list) > 0 {
		return nil, c.p.result(c.label)
	}
	pl.files = append(pl.files, *pl.spec)
	return pl, nil
}

// inspect reads the table of a zip archive, or every header of a tar.gz
// one, and checks each entry and the archive as a whole: clean relative
// names, files and folders only, within the limits. Nothing is unpacked.
// label names the archive in problems.
func inspect(kind string, f io.ReaderAt, size int64, l Limits, label string) (*plan, []events.FieldError) {
	c := newChecker(label, size, l)
	switch kind {
	case kindZip:
		zr, err := zip.NewReader(f, size)
		if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
			return nil, []events.FieldError{{Field: label, Reason: "not a zip archive: " + err.Error()}}
		}
		if len(zr.File) > l.MaxEntries {
			return nil, []events.FieldError{{Field: label, Reason: fmt.Sprintf("more than %d entries", l.MaxEntries)}}
		}
		for i, zf := range zr.File {
			target := ""
			if zipType(zf) == typeSymlink && zf.UncompressedSize64 < 4096 {
				target = readLink(zf)
			}
			c.entry(i, zf.Name, zipType(zf), int64(zf.UncompressedSize64), int64(zf.CompressedSize64), target, zf)
			if c.stop {
				break
			}
		}
	case kindTarGz:
		err := walkTar(io.NewSectionReader(f, 0, size), l, func(i int, h *tar.Header, _ io.Reader) error {
			c.entry(i, h.Name, tarType(h), h.Size, -1, h.Linkname, nil)
			if c.stop {
				return errStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			c.p.add(label, "%v", err)
		}
	default:
		return nil, []events.FieldError{{Field: label, Reason: "not an archive kind the intake unpacks"}}
	}
	return c.finish(kind)
}

func readLink(zf *zip.File) string {
	r, err := zf.Open()
	if err != nil {
		return ""
	}
	defer r.Close()
	b, _ := io.ReadAll(io.LimitReader(r, 4096))
	return string(b)
}

var errStop = errors.New("stop")

// walkTar calls fn for every header of a gzip-compressed tar stream, in
// order, with the entry's content, and returns fn's first error as it is.
// Decompression is bounded by the limits: the entries' sizes and their
// headers. A stream that does not read is an *archiveError.
func walkTar(r io.Reader, l Limits, fn func(i int, h *tar.Header, content io.Reader) error) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return &archiveError{err: fmt.Errorf("not a gzip stream: %w", err)}
	}
	defer gz.Close()
	budget := &budgetReader{r: gz, left: l.MaxBytes + int64(l.MaxEntries+4)*8192}
	tr := tar.NewReader(budget)
	for i := 0; ; i++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			if budget.over {
				return &archiveError{err: fmt.Errorf("unpacks to more than %d bytes", l.MaxBytes)}
			}
			return &archiveError{err: fmt.Errorf("reading the tar stream: %w", err)}
		}
		if err := fn(i, h, tr); err != nil {
			return err
		}
	}
}

// budgetReader fails once more than left bytes have been read.
type budgetReader struct {
	r    io.Reader
	left int64
	over bool
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		b.over = true
		return 0, errors.New("decompressed past the archive's limits")
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

// archiveError is an entry whose content could not be read: a corrupt
// archive, not a store that failed.
type archiveError struct {
	entry string
	err   error
}

func (e *archiveError) Error() string {
	if e.entry == "" {
		return e.err.Error()
	}
	return e.entry + ": " + e.err.Error()
}
func (e *archiveError) Unwrap() error { return e.err }

// source reads an entry's content and remembers its first error, so that
// a failed Put can tell a corrupt entry from a failed store.
type source struct {
	r   io.Reader
	err error
}

func (s *source) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && s.err == nil {
		s.err = err
	}
	return n, err
}

// extract stores the plan's files under dst (a prefix ending in '/'),
// dataset.yaml last, so that the dataset is complete when it lands. A
// corrupt entry is an *archiveError; anything else is the store's.
func extract(ctx context.Context, store objstore.Putter, f io.ReaderAt, size int64, pl *plan, l Limits, dst objstore.URI) error {
	spec := pl.files[len(pl.files)-1]
	data := pl.files[:len(pl.files)-1]
	put := func(ctx context.Context, m member, r io.Reader) error {
		src := &source{r: r}
		opts := []objstore.PutOption{}
		if ct := mime.TypeByExtension(path.Ext(m.path)); ct != "" {
			opts = append(opts, objstore.WithContentType(ct))
		}
		if _, err := store.Put(ctx, dst.Join(m.path), src, m.size, opts...); err != nil {
			if src.err != nil {
				return &archiveError{m.name, src.err}
			}
			return err
		}
		return nil
	}
	var specBytes []byte
	switch pl.kind {
	case kindZip:
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(putParallel)
		for _, m := range data {
			g.Go(func() error { return putZip(gctx, m, put) })
		}
		if err := g.Wait(); err != nil {
			return err
		}
		b, err := readZip(spec)
		if err != nil {
			return err
		}
		specBytes = b
	case kindTarGz:
		want := map[int]member{}
		for _, m := range pl.files {
			want[m.index] = m
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(putParallel)
		err := walkTar(io.NewSectionReader(f, 0, size), l, func(i int, _ *tar.Header, content io.Reader) error {
			m, ok := want[i]
			switch {
			case !ok:
				return nil
			case gctx.Err() != nil:
				return errStop
			case m.index == spec.index || m.size <= inMemory:
				b, err := io.ReadAll(content)
				if err != nil {
					return &archiveError{m.name, err}
				}
				if m.index == spec.index {
					specBytes = b
					return nil
				}
				g.Go(func() error { return put(gctx, m, bytes.NewReader(b)) })
				return nil
			}
			return put(gctx, m, content)
		})
		if werr := g.Wait(); werr != nil {
			return werr
		}
		if err != nil && !errors.Is(err, errStop) {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return put(ctx, spec, bytes.NewReader(specBytes))
}

// putZip stores one zip entry and reads it to its end, where archive/zip
// checks its CRC and that it is no longer than its header says.
func putZip(ctx context.Context, m member, put func(context.Context, member, io.Reader) error) error {
	rc, err := m.zf.Open()
	if err != nil {
		return &archiveError{m.name, err}
	}
	defer rc.Close()
	if m.size <= inMemory {
		b, err := io.ReadAll(io.LimitReader(rc, m.size+1))
		switch {
		case err != nil:
			return &archiveError{m.name, err}
		case int64(len(b)) != m.size:
			return &archiveError{m.name, fmt.Errorf("%d bytes, %d in its header", len(b), m.size)}
		}
		return put(ctx, m, bytes.NewReader(b))
	}
	if err := put(ctx, m, rc); err != nil {
		return err
	}
	var one [1]byte
	if n, err := rc.Read(one[:]); n > 0 || (err != nil && !errors.Is(err, io.EOF)) {
		if err == nil {
			err = fmt.Errorf("longer than the %d bytes of its header", m.size)
		}
		return &archiveError{m.name, err}
	}
	return nil
}

func readZip(m member) ([]byte, error) {
	rc, err := m.zf.Open()
	if err != nil {
		return nil, &archiveError{m.name, err}
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxSpecSize+1))
	if err != nil {
		return nil, &archiveError{m.name, err}
	}
	return b, nil
}

// spool copies the archive at u into a temporary file (removed by the
// returned func), refusing one over max bytes with objstore.ErrTooLarge.
func spool(ctx context.Context, store objstore.Getter, u objstore.URI, versionID string, max int64) (*os.File, int64, func(), error) {
	opts := []objstore.GetOption{objstore.WithMaxSize(max)}
	if versionID != "" {
		opts = append(opts, objstore.WithVersion(versionID))
	}
	r, _, err := store.Get(ctx, u, opts...)
	if err != nil {
		return nil, 0, nil, err
	}
	defer r.Close()
	tmp, err := os.CreateTemp("", "vp-intake-*")
	if err != nil {
		return nil, 0, nil, fmt.Errorf("spooling %s: %w", u, err)
	}
	done := func() { tmp.Close(); os.Remove(tmp.Name()) }
	n, err := io.Copy(tmp, r)
	if err != nil {
		done()
		return nil, 0, nil, fmt.Errorf("spooling %s: %w", u, err)
	}
	return tmp, n, done, nil
}
