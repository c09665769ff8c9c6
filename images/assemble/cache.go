package assemble

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/vision-platform/vp/internal/ctxio"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/pgzip"

	"github.com/vision-platform/vp/images/wheel"
)

// Compressor names the layer compression; it is part of every cache key,
// since the compressed digest depends on compressor, version, level and
// block size.
const Compressor = "pgzip-1.3.0-level1-block1MiB"

const compressBlock = 1 << 20

// Cache keeps compressed layers in an OCI image layout on disk, indexed by
// the key of their inputs, and remembers file hashes by stat (size,
// modification and change times, inode) so unchanged inputs are not read
// again. A remembered hash only keys a cache entry: what goes into a layer
// is checked as it is written (see Builder).
type Cache struct {
	dir    string
	layout layout.Path

	mu     sync.Mutex
	layers map[string]layerRecord // input key -> blob
	hashes map[string]string      // stat key -> sha256 of content
}

type layerRecord struct {
	Digest string `json:"digest"`
	DiffID string `json:"diffID"`
	Size   int64  `json:"size"`
}

type cacheIndex struct {
	Layers map[string]layerRecord `json:"layers"`
	Hashes map[string]string      `json:"hashes"`
}

// OpenCache opens (creating it if need be) the cache in dir.
func OpenCache(dir string) (*Cache, error) {
	lp := filepath.Join(dir, "oci")
	p, err := layout.FromPath(lp)
	if err != nil {
		if p, err = layout.Write(lp, empty.Index); err != nil {
			return nil, fmt.Errorf("creating OCI layout %s: %w", lp, err)
		}
	}
	c := &Cache{dir: dir, layout: p, layers: map[string]layerRecord{}, hashes: map[string]string{}}
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("reading cache index: %w", err)
	default:
		var idx cacheIndex
		if err := json.Unmarshal(b, &idx); err != nil {
			return nil, fmt.Errorf("reading cache index: %w", err)
		}
		for k, v := range idx.Layers {
			c.layers[k] = v
		}
		for k, v := range idx.Hashes {
			c.hashes[k] = v
		}
	}
	return c, nil
}

// Layout is the OCI layout holding every blob the cache made.
func (c *Cache) Layout() layout.Path { return c.layout }

// Save writes the index (atomically).
func (c *Cache) Save() error {
	c.mu.Lock()
	b, err := json.Marshal(cacheIndex{Layers: c.layers, Hashes: c.hashes})
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("encoding cache index: %w", err)
	}
	return writeAtomic(filepath.Join(c.dir, "index.json"), b)
}

// writeAtomic writes a file (mode 0644) through a temporary one renamed
// over it.
func writeAtomic(p string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// FileSHA256 returns the hex sha256 of a file, read only when its stat
// (size, modification and change times, inode) changed since the last
// time. The stat is taken from the open file before it is read.
func (c *Cache) FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hashing: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("hashing: %w", err)
	}
	if h, ok := c.Sum(path, fi); ok {
		return h, nil
	}
	s := sha256.New()
	if _, err := io.CopyBuffer(s, struct{ io.Reader }{f}, make([]byte, 1<<20)); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	h := hex.EncodeToString(s.Sum(nil))
	c.Remember(path, fi, h)
	return h, nil
}

var _ wheel.Sums = (*Cache)(nil)

// Sum is the remembered sha256 of the file at path with stat fi.
func (c *Cache) Sum(path string, fi fs.FileInfo) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.hashes[statKey(path, fi)]
	return h, ok
}

// Remember records the sha256 of the file at path with stat fi.
func (c *Cache) Remember(path string, fi fs.FileInfo, sum string) {
	c.mu.Lock()
	c.hashes[statKey(path, fi)] = sum
	c.mu.Unlock()
}

// Layer returns the layer for an input key: from the cache when it was
// made before (nothing is read or compressed), else made by produce, which
// writes the uncompressed tar. The tar is hashed, compressed in parallel
// and hashed again in one pass, straight to the layout's blob directory,
// so memory stays flat whatever the layer's size. Cancelling ctx fails
// produce's next write: Layer returns promptly with ctx's error and keeps
// nothing of the layer.
func (c *Cache) Layer(ctx context.Context, key string, produce func(w io.Writer) error) (l v1.Layer, hit bool, err error) {
	c.mu.Lock()
	rec, ok := c.layers[Compressor+"|"+key]
	c.mu.Unlock()
	if ok {
		if l, err := c.blobLayer(rec); err == nil {
			return l, true, nil
		}
		// the blob is gone: make it again
	}
	if rec, err = c.compress(ctx, produce); err != nil {
		return nil, false, err
	}
	c.record(key, rec)
	l, err = c.blobLayer(rec)
	return l, false, err
}

func (c *Cache) record(key string, rec layerRecord) {
	c.mu.Lock()
	c.layers[Compressor+"|"+key] = rec
	c.mu.Unlock()
}

func (c *Cache) blobPath(digest string) string {
	return filepath.Join(string(c.layout), "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

// compress writes what produce writes as a compressed blob of the layout.
// The blob appears under its digest only once it is whole.
func (c *Cache) compress(ctx context.Context, produce func(w io.Writer) error) (layerRecord, error) {
	if err := ctx.Err(); err != nil {
		return layerRecord{}, err
	}
	blobs := filepath.Join(string(c.layout), "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return layerRecord{}, fmt.Errorf("creating blob directory: %w", err)
	}
	tmp, err := os.CreateTemp(blobs, ".layer-*")
	if err != nil {
		return layerRecord{}, fmt.Errorf("creating layer blob: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	// Both hashes run beside the writes they follow rather than after
	// them: on a machine of few cores sha256 is as dear as compression.
	digest := newHashBeside(sha256.New())
	defer digest.stop()
	counter := &countWriter{}
	zw, err := newCompressor(digest.tee(io.MultiWriter(tmp, counter)))
	if err != nil {
		return layerRecord{}, fmt.Errorf("starting compressor: %w", err)
	}
	// The compressor's goroutines write to digest: they end before it does.
	zwClosed := false
	defer func() {
		if !zwClosed {
			zw.Close()
		}
	}()
	diff := newHashBeside(sha256.New())
	defer diff.stop()
	if err := produce(ctxio.Writer(ctx, diff.tee(zw))); err != nil {
		return layerRecord{}, err
	}
	// produce may have ended without writing again after ctx was done.
	if err := ctx.Err(); err != nil {
		return layerRecord{}, err
	}
	zwClosed = true
	if err := zw.Close(); err != nil {
		return layerRecord{}, fmt.Errorf("compressing layer: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return layerRecord{}, fmt.Errorf("writing layer blob: %w", err)
	}
	rec := layerRecord{Digest: "sha256:" + digest.sum(), DiffID: "sha256:" + diff.sum(), Size: counter.n}
	if err := os.Rename(tmp.Name(), c.blobPath(rec.Digest)); err != nil {
		return layerRecord{}, fmt.Errorf("writing layer blob: %w", err)
	}
	return rec, nil
}

// newCompressor is the layer compression Compressor names, writing to w.
func newCompressor(w io.Writer) (*pgzip.Writer, error) {
	zw, err := pgzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return nil, fmt.Errorf("making pgzip writer: %w", err)
	}
	if err := zw.SetConcurrency(compressBlock, 2*runtime.GOMAXPROCS(0)); err != nil {
		return nil, fmt.Errorf("setting pgzip concurrency: %w", err)
	}
	return zw, nil
}

func (c *Cache) blobLayer(rec layerRecord) (v1.Layer, error) {
	d, err := v1.NewHash(rec.Digest)
	if err != nil {
		return nil, fmt.Errorf("cached layer digest: %w", err)
	}
	diff, err := v1.NewHash(rec.DiffID)
	if err != nil {
		return nil, fmt.Errorf("cached layer diff id: %w", err)
	}
	p := filepath.Join(string(c.layout), "blobs", d.Algorithm, d.Hex)
	fi, err := os.Stat(p)
	if err != nil || fi.Size() != rec.Size {
		return nil, fmt.Errorf("cached blob %s missing or damaged", rec.Digest)
	}
	return &blobLayer{path: p, digest: d, diffID: diff, size: rec.Size}, nil
}

// blobLayer is a compressed layer already on disk whose digests are known:
// nothing is recomputed when it is written to a layout or pushed.
type blobLayer struct {
	path           string
	digest, diffID v1.Hash
	size           int64
}

var _ v1.Layer = (*blobLayer)(nil)

func (l *blobLayer) Digest() (v1.Hash, error)             { return l.digest, nil }
func (l *blobLayer) DiffID() (v1.Hash, error)             { return l.diffID, nil }
func (l *blobLayer) Size() (int64, error)                 { return l.size, nil }
func (l *blobLayer) MediaType() (types.MediaType, error)  { return types.OCILayer, nil }
func (l *blobLayer) Compressed() (io.ReadCloser, error)   { return os.Open(l.path) }
func (l *blobLayer) Uncompressed() (io.ReadCloser, error) { return gunzipFile(l.path) }

func gunzipFile(p string) (io.ReadCloser, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	zr, err := pgzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reading layer blob %s: %w", p, err)
	}
	return &readCloser{Reader: zr, close: func() error { zr.Close(); return f.Close() }}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r *readCloser) Close() error { return r.close() }

// hashBeside hashes what is written through tee on a goroutine of its own,
// while the same bytes are written on: each Write returns once both are
// done, so the caller may reuse its buffer. Small writes are hashed in
// line, where a hand-over would cost more than it saves.
type hashBeside struct {
	h    hash.Hash
	work chan []byte
	done chan struct{}
}

const hashBesideOver = 64 << 10

func newHashBeside(h hash.Hash) *hashBeside {
	hb := &hashBeside{h: h, work: make(chan []byte), done: make(chan struct{})}
	go func() {
		for p := range hb.work {
			hb.h.Write(p)
			hb.done <- struct{}{}
		}
	}()
	return hb
}

func (hb *hashBeside) tee(w io.Writer) io.Writer { return &teeBeside{hb: hb, w: w} }

// sum is the hash of everything written; call it once the writes are over.
func (hb *hashBeside) sum() string { return hexSum(hb.h) }

// stop ends the goroutine, once nothing writes through tee any more.
func (hb *hashBeside) stop() { close(hb.work) }

type teeBeside struct {
	hb *hashBeside
	w  io.Writer
}

func (t *teeBeside) Write(p []byte) (int, error) {
	if len(p) < hashBesideOver {
		t.hb.h.Write(p)
		return t.w.Write(p)
	}
	t.hb.work <- p
	n, err := t.w.Write(p)
	<-t.hb.done
	return n, err
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// Key hashes the parts of an input description into a cache key.
func Key(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hexSum(h)
}
