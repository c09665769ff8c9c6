package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// DefaultMaxFSObjects is the most objects NewFS lists unless
// WithMaxObjects says otherwise.
const DefaultMaxFSObjects = 1 << 20

// ListGetter lists and reads objects: what NewFS needs of a store.
type ListGetter interface {
	Lister
	Getter
}

// FS is a read-only fs.FS view of the objects under one prefix, listed
// once when it is made: ReadDir and Stat answer from that listing, and
// Open reads an object (a Get) only when its file is first read. Folders
// are the key prefixes up to each '/', and folder markers (keys ending in
// '/') are folders. Keys that are not a valid io/fs path relative to the
// prefix ("a//b", "./a", "../a"), or that clash with a folder of the same
// name ("a" and "a/b", which S3 allows), are left out and listed by
// Skipped.
//
// A file's Stat().Sys() is its Info. Reads use the context NewFS was given,
// are pinned to the listed version when the listing had one, and fail
// with ErrTooLarge past the listed size; Prefetch reads many small files
// at once ahead of their Open. It is safe for concurrent use.
type FS struct {
	ctx     context.Context
	store   Getter
	prefix  URI
	root    *node
	skipped []string

	mu    sync.Mutex
	cache map[*node][]byte // what Prefetch read
}

var (
	_ fs.FS        = (*FS)(nil)
	_ fs.ReadDirFS = (*FS)(nil)
	_ fs.StatFS    = (*FS)(nil)
)

// node is a file or folder of the view.
type node struct {
	name     string
	info     Info // files only
	dir      bool
	modTime  time.Time
	children map[string]*node // folders only
	sorted   []*node          // children by name, once built
}

// FSOption sets how NewFS lists.
type FSOption func(*fsOptions) error

type fsOptions struct{ maxObjects int }

// WithMaxObjects bounds the listing: a prefix holding more than n objects
// is refused with ErrTooLarge.
func WithMaxObjects(n int) FSOption {
	return func(o *fsOptions) error {
		if n < 1 {
			return fmt.Errorf("object limit %d is below 1", n)
		}
		o.maxObjects = n
		return nil
	}
}

// NewFS lists every object under prefix (a prefix without a trailing '/'
// gets one: the view is of a folder) and returns the view of them. ctx
// bounds the listing and every later read.
func NewFS(ctx context.Context, s ListGetter, prefix URI, opts ...FSOption) (*FS, error) {
	o := fsOptions{maxObjects: DefaultMaxFSObjects}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("listing %s: %w", prefix, err)
		}
	}
	if prefix.Key != "" && !strings.HasSuffix(prefix.Key, "/") {
		prefix.Key += "/"
	}
	f := &FS{ctx: ctx, store: s, prefix: prefix, root: &node{name: ".", dir: true, children: map[string]*node{}}, cache: map[*node][]byte{}}
	n := 0
	for info, err := range s.List(ctx, prefix) {
		if err != nil {
			return nil, err
		}
		if n++; n > o.maxObjects {
			return nil, fmt.Errorf("listing %s: %w: more than %d objects", prefix, ErrTooLarge, o.maxObjects)
		}
		f.add(info)
	}
	f.root.sort()
	return f, nil
}

// add places one listed object in the tree, or in skipped.
func (f *FS) add(info Info) {
	rel := strings.TrimPrefix(info.URI.Key, f.prefix.Key)
	if rel == "" {
		return // the prefix's own folder marker
	}
	marker := strings.HasSuffix(rel, "/")
	rel = strings.TrimSuffix(rel, "/")
	if !fs.ValidPath(rel) || rel == "." {
		f.skipped = append(f.skipped, info.URI.Key)
		return
	}
	parts := strings.Split(rel, "/")
	dir := f.root
	for i, p := range parts {
		last := i == len(parts)-1
		child := dir.children[p]
		switch {
		case child == nil && (!last || marker):
			child = &node{name: p, dir: true, children: map[string]*node{}}
			dir.children[p] = child
		case child == nil:
			dir.children[p] = &node{name: p, info: info, modTime: info.LastModified}
			return
		case !child.dir || (last && !marker):
			f.skipped = append(f.skipped, info.URI.Key) // a file where a folder is, or the reverse
			return
		}
		if last && marker && child.modTime.IsZero() {
			child.modTime = info.LastModified
		}
		dir = child
	}
}

func (n *node) sort() {
	if !n.dir {
		return
	}
	n.sorted = make([]*node, 0, len(n.children))
	for _, c := range n.children {
		n.sorted = append(n.sorted, c)
		c.sort()
	}
	slices.SortFunc(n.sorted, func(a, b *node) int { return strings.Compare(a.name, b.name) })
}

// Prefix is the prefix the view is of, ending in '/' (or empty: the whole
// bucket).
func (f *FS) Prefix() URI { return f.prefix }

// Skipped are the keys the view leaves out, in listing order.
func (f *FS) Skipped() []string { return slices.Clone(f.skipped) }

func (f *FS) lookup(op, name string) (*node, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	n := f.root
	if name == "." {
		return n, nil
	}
	for _, p := range strings.Split(name, "/") {
		if !n.dir {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		c, ok := n.children[p]
		if !ok {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		n = c
	}
	return n, nil
}

// Open opens a file or a folder of the view.
func (f *FS) Open(name string) (fs.File, error) {
	n, err := f.lookup("open", name)
	if err != nil {
		return nil, err
	}
	if n.dir {
		return &dirFile{n: n, path: name}, nil
	}
	return &objFile{fs: f, n: n, path: name}, nil
}

// Stat describes a file or a folder of the view, from the listing.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	n, err := f.lookup("stat", name)
	if err != nil {
		return nil, err
	}
	return fileInfo{n}, nil
}

// ReadDir lists a folder of the view, sorted by name.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := f.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if !n.dir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	return entries(n.sorted), nil
}

func entries(ns []*node) []fs.DirEntry {
	out := make([]fs.DirEntry, len(ns))
	for i, c := range ns {
		out[i] = fs.FileInfoToDirEntry(fileInfo{c})
	}
	return out
}

// fileInfo describes a node.
type fileInfo struct{ n *node }

func (i fileInfo) Name() string       { return i.n.name }
func (i fileInfo) Size() int64        { return i.n.info.Size }
func (i fileInfo) ModTime() time.Time { return i.n.modTime }
func (i fileInfo) IsDir() bool        { return i.n.dir }
func (i fileInfo) Sys() any {
	if i.n.dir {
		return nil
	}
	return i.n.info
}
func (i fileInfo) Mode() fs.FileMode {
	if i.n.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}

// Prefetch reads, parallel at a time, every file for which want says yes
// (given its path and its listed Info) into memory, where Open then finds
// it: for a reader that opens many small files one after the other, such
// as the label files of a YOLO dataset. want is called once per file, in
// walk order, before any read, so it may keep a budget. The first read
// error ends it.
func (f *FS) Prefetch(parallel int, want func(path string, info Info) bool) error {
	g, ctx := errgroup.WithContext(f.ctx)
	g.SetLimit(max(parallel, 1))
	var walk func(dir string, n *node)
	walk = func(dir string, n *node) {
		for _, c := range n.sorted {
			p := path.Join(dir, c.name)
			if c.dir {
				walk(p, c)
				continue
			}
			if !want(p, c.info) {
				continue
			}
			g.Go(func() error {
				b, err := f.read(ctx, c)
				if err != nil {
					return &fs.PathError{Op: "read", Path: p, Err: err}
				}
				f.mu.Lock()
				f.cache[c] = b
				f.mu.Unlock()
				return nil
			})
		}
	}
	walk("", f.root)
	return g.Wait()
}

// read gets a file's object, pinned to its listed version and size.
func (f *FS) read(ctx context.Context, n *node) ([]byte, error) {
	r, err := f.open(ctx, n)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func (f *FS) open(ctx context.Context, n *node) (io.ReadCloser, error) {
	f.mu.Lock()
	b, ok := f.cache[n]
	f.mu.Unlock()
	if ok {
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	opts := []GetOption{WithMaxSize(n.info.Size)}
	if v := n.info.VersionID; v != "" {
		opts = append(opts, WithVersion(v))
	}
	r, _, err := f.store.Get(ctx, n.info.URI, opts...)
	return r, err
}

// objFile is an object, read on its first Read.
type objFile struct {
	fs   *FS
	n    *node
	path string
	r    io.ReadCloser
	err  error
}

func (o *objFile) Stat() (fs.FileInfo, error) { return fileInfo{o.n}, nil }

func (o *objFile) Read(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	if o.r == nil {
		r, err := o.fs.open(o.fs.ctx, o.n)
		if err != nil {
			o.err = &fs.PathError{Op: "read", Path: o.path, Err: err}
			return 0, o.err
		}
		o.r = r
	}
	n, err := o.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = &fs.PathError{Op: "read", Path: o.path, Err: err}
	}
	return n, err
}

func (o *objFile) Close() error {
	if o.r == nil {
		return nil
	}
	err := o.r.Close()
	o.r, o.err = nil, fs.ErrClosed
	return err
}

// dirFile is an open folder.
type dirFile struct {
	n    *node
	path string
	off  int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return fileInfo{d.n}, nil }

func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.path, Err: errors.New("is a directory")}
}

func (d *dirFile) Close() error { return nil }

// ReadDir lists the next n entries (all the rest for n <= 0), as
// fs.ReadDirFile says.
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.n.sorted[d.off:]
	if n <= 0 {
		d.off = len(d.n.sorted)
		return entries(rest), nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	rest = rest[:min(n, len(rest))]
	d.off += len(rest)
	return entries(rest), nil
}

// URI is the object of the file at name (a valid io/fs path), whether or
// not the view holds it.
func (f *FS) URI(name string) URI {
	return URI{Bucket: f.prefix.Bucket, Key: f.prefix.Key + path.Clean(name)}
}
