package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/vision-platform/vp/internal/dataset"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/objstore"
)

// DefaultMaxManifestSize is the largest manifest Download reads unless
// told otherwise: 64 MiB, about 400,000 files.
const DefaultMaxManifestSize = 64 << 20

// DownloadStats says what a dataset download moved.
type DownloadStats struct {
	Files    int
	Bytes    int64
	Duration time.Duration
}

// DownloadOptions tune Download; the zero value takes every default.
type DownloadOptions struct {
	Workers  int // files fetched at once (default 8)
	Attempts int // tries per object when the store is unreachable or busy (default 5)
	// MaxManifestSize caps the manifest (default DefaultMaxManifestSize): a
	// larger one is refused (objstore.ErrTooLarge) without being read into
	// memory.
	MaxManifestSize int64
	// ManifestVersion pins the object version of the manifest (the
	// versionId its dataset.uploaded named), when the bucket is versioned.
	ManifestVersion string
}

func (o *DownloadOptions) defaults() {
	if o.Workers < 1 {
		o.Workers = 8
	}
	if o.Attempts < 1 {
		o.Attempts = 5
	}
	if o.MaxManifestSize <= 0 {
		o.MaxManifestSize = DefaultMaxManifestSize
	}
}

// Download fetches the dataset version ref into dir: the manifest first,
// checked against ref.Digest, then every file it lists, in parallel, each
// checked for size and sha256 as it streams to disk. A file is read no
// further than one byte past its manifest size, is written under a
// temporary name and renamed into place once checked, so a failed file
// leaves nothing behind; a file whose manifest entry names a version is
// read at that version. Only the store's transient errors are retried.
func Download(ctx context.Context, s objstore.Getter, ref events.DatasetRef, dir string, o DownloadOptions) (*dataset.Manifest, DownloadStats, error) {
	o.defaults()
	start := time.Now()
	prefix := objstore.URI{Bucket: ref.Bucket, Key: ref.Prefix}
	mu := prefix.Join(dataset.ManifestName)
	opts := []objstore.GetOption{objstore.WithMaxSize(o.MaxManifestSize)}
	if o.ManifestVersion != "" {
		opts = append(opts, objstore.WithVersion(o.ManifestVersion))
	}
	var raw []byte
	err := retry(ctx, o.Attempts, 250*time.Millisecond, func() error {
		body, _, err := s.Get(ctx, mu, opts...)
		if err != nil {
			return err
		}
		defer body.Close()
		raw, err = io.ReadAll(body)
		return err
	})
	if err != nil {
		return nil, DownloadStats{}, fmt.Errorf("reading manifest %s: %w", mu, err)
	}
	sum := sha256.Sum256(raw)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != ref.Digest {
		return nil, DownloadStats{}, fmt.Errorf("manifest %s has digest %s, the job names %s", mu, got, ref.Digest)
	}
	m, err := dataset.ParseManifest(raw)
	if err != nil {
		return nil, DownloadStats{}, err
	}
	jobs := make(chan dataset.File)
	errc := make(chan error, len(m.Files))
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var total int64
	var tmu sync.Mutex
	for i := 0; i < o.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			for f := range jobs {
				if err := fetchFile(ctx, s, prefix, f, dir, o.Attempts, buf); err != nil {
					errc <- err
					cancel()
					continue
				}
				tmu.Lock()
				total += f.Size
				tmu.Unlock()
			}
		}()
	}
	for _, f := range m.Files {
		select {
		case jobs <- f:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	close(errc)
	var errs []error
	for e := range errc {
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		return nil, DownloadStats{}, errors.Join(errs...)
	}
	return m, DownloadStats{Files: len(m.Files), Bytes: total, Duration: time.Since(start)}, nil
}

func fetchFile(ctx context.Context, s objstore.Getter, prefix objstore.URI, f dataset.File, dir string, attempts int, buf []byte) error {
	dst := filepath.Join(dir, filepath.FromSlash(f.Path))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("downloading %s: %w", f.Path, err)
	}
	src := prefix.Join(f.Path)
	var opts []objstore.GetOption
	if f.VersionID != "" {
		opts = append(opts, objstore.WithVersion(f.VersionID))
	}
	check := func(n int64, sha string) error {
		if n != f.Size {
			return fmt.Errorf("%s: %d bytes, the manifest says %d", src, n, f.Size)
		}
		if sha != f.SHA256 {
			return fmt.Errorf("%s: sha256 %s, the manifest says %s", src, sha, f.SHA256)
		}
		return nil
	}
	return retry(ctx, attempts, 250*time.Millisecond, func() error {
		return fetch(ctx, s, src, dst, f.Size, check, buf, opts...)
	})
}
