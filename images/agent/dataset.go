package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/vision-platform/vp/events"
)

// DownloadStats says what a dataset download moved.
type DownloadStats struct {
	Files    int
	Bytes    int64
	Duration time.Duration
}

// Download fetches the dataset version ref into dir: the manifest first,
// checked against ref.Digest, then every file it lists, in parallel
// (workers at a time), each checked for size and sha256 as it streams to
// disk. Transient store errors are retried with backoff.
func Download(ctx context.Context, c *minio.Client, ref events.DatasetRef, dir string, workers, attempts int) (*Manifest, DownloadStats, error) {
	start := time.Now()
	prefix := S3URI{ref.Bucket, ref.Prefix}
	var raw []byte
	err := retry(ctx, attempts, 250*time.Millisecond, func() error {
		obj, err := c.GetObject(ctx, ref.Bucket, prefix.Join(ManifestName).Key, minio.GetObjectOptions{})
		if err != nil {
			return err
		}
		defer obj.Close()
		raw, err = io.ReadAll(obj)
		return err
	})
	if err != nil {
		return nil, DownloadStats{}, fmt.Errorf("reading manifest %s: %w", prefix.Join(ManifestName), err)
	}
	sum := sha256.Sum256(raw)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != ref.Digest {
		return nil, DownloadStats{}, fmt.Errorf("manifest %s has digest %s, the job names %s", prefix.Join(ManifestName), got, ref.Digest)
	}
	m, err := ParseManifest(raw)
	if err != nil {
		return nil, DownloadStats{}, err
	}
	if workers < 1 {
		workers = 1
	}
	jobs := make(chan ManifestFile)
	errc := make(chan error, len(m.Files))
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var total int64
	var mu sync.Mutex
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			for f := range jobs {
				if err := fetchFile(ctx, c, prefix, f, dir, attempts, buf); err != nil {
					errc <- err
					cancel()
					continue
				}
				mu.Lock()
				total += f.Size
				mu.Unlock()
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

func fetchFile(ctx context.Context, c *minio.Client, prefix S3URI, f ManifestFile, dir string, attempts int, buf []byte) error {
	dst := filepath.Join(dir, filepath.FromSlash(f.Path))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	src := prefix.Join(f.Path)
	return retry(ctx, attempts, 250*time.Millisecond, func() error {
		obj, err := c.GetObject(ctx, src.Bucket, src.Key, minio.GetObjectOptions{})
		if err != nil {
			return err
		}
		defer obj.Close()
		out, err := os.Create(dst)
		if err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.CopyBuffer(io.MultiWriter(out, h), obj, buf)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("downloading %s: %w", src, err)
		}
		if n != f.Size {
			return fmt.Errorf("%s: %d bytes, the manifest says %d", src, n, f.Size)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
			return fmt.Errorf("%s: sha256 %s, the manifest says %s", src, got, f.SHA256)
		}
		return nil
	})
}

// WriteManifest builds the manifest of the files under dir (for tests and
// the dataset intake) and returns it with its digest.
func WriteManifest(dir string) ([]byte, string, error) {
	var m Manifest
	m.Version = 1
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s := sha256.Sum256(b)
		m.Files = append(m.Files, ManifestFile{Path: filepath.ToSlash(rel), Size: int64(len(b)), SHA256: hex.EncodeToString(s[:])})
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	var buf bytes.Buffer
	enc := jsonEncoder(&buf)
	if err := enc.Encode(m); err != nil {
		return nil, "", err
	}
	s := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), "sha256:" + hex.EncodeToString(s[:]), nil
}
