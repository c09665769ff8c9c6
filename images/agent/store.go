package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/vision-platform/vp/internal/objstore"
)

// retry runs f until it succeeds, fails for good, or attempts run out,
// waiting base×2^n (with jitter) between tries. Only the store's transient
// errors (objstore.Transient: unreachable, connection dropped, busy or
// failing on its side) are retried; a local error (a file that cannot be
// written) or a refusal is returned at once.
func retry(ctx context.Context, attempts int, base time.Duration, f func() error) error {
	var err error
	for i := 0; i < attempts; i++ {
		if err = f(); err == nil || !objstore.Transient(err) || ctx.Err() != nil {
			return err
		}
		if i == attempts-1 {
			break
		}
		d := base << i
		d += time.Duration(rand.Int64N(int64(d)/2 + 1))
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		}
	}
	return fmt.Errorf("object storage unreachable after %d attempts: %w", attempts, err)
}

// upload puts a local file and returns its sha256 and size, hashed as it
// is sent (one read of the file per attempt).
func upload(ctx context.Context, s objstore.Putter, dst objstore.URI, file string, attempts int) (string, int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", 0, fmt.Errorf("uploading %s: %w", filepath.Base(file), err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", 0, fmt.Errorf("uploading %s: %w", filepath.Base(file), err)
	}
	var info objstore.Info
	err = retry(ctx, attempts, 250*time.Millisecond, func() error {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		var err error
		info, err = s.Put(ctx, dst, f, fi.Size(), objstore.WithContentType(contentType(file)))
		return err
	})
	if err != nil {
		return "", 0, fmt.Errorf("uploading %s to %s: %w", filepath.Base(file), dst, err)
	}
	return info.SHA256, fi.Size(), nil
}

// fetch writes the object src to dst through a temporary file beside it,
// renamed into place only once check accepts its size and sha256: on any
// failure the temporary file is removed and dst is untouched. It reads at
// most max+1 bytes of the object (max < 0: no limit).
func fetch(ctx context.Context, s objstore.Getter, src objstore.URI, dst string, max int64, check func(n int64, sha string) error, buf []byte, opts ...objstore.GetOption) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*.part")
	if err != nil {
		return fmt.Errorf("downloading %s: %w", src, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if max >= 0 {
		opts = append(opts, objstore.WithMaxSize(max))
	}
	body, _, err := s.Get(ctx, src, opts...)
	if err != nil {
		return err
	}
	defer body.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(tmp, h), body, buf)
	if err != nil {
		return fmt.Errorf("downloading %s: %w", src, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("downloading %s: %w", src, err)
	}
	if check != nil {
		if err := check(n, hex.EncodeToString(h.Sum(nil))); err != nil {
			return err
		}
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("downloading %s: %w", src, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("downloading %s: %w", src, err)
	}
	return nil
}

func contentType(p string) string {
	switch filepath.Ext(p) {
	case ".json":
		return "application/json"
	case ".log", ".txt":
		return "text/plain"
	}
	return "application/octet-stream"
}
