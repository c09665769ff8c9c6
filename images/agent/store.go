package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// S3URI is s3://bucket/prefix.
type S3URI struct{ Bucket, Key string }

// ParseS3 splits an s3:// URI.
func ParseS3(u string) (S3URI, error) {
	rest, ok := strings.CutPrefix(u, "s3://")
	b, k, _ := strings.Cut(rest, "/")
	if !ok || b == "" {
		return S3URI{}, fmt.Errorf("%q is not an s3://bucket/key URI", u)
	}
	return S3URI{b, k}, nil
}

func (u S3URI) String() string { return "s3://" + u.Bucket + "/" + u.Key }

// Join appends a path to the key.
func (u S3URI) Join(p string) S3URI {
	k := strings.TrimSuffix(u.Key, "/")
	if k != "" {
		k += "/"
	}
	return S3URI{u.Bucket, k + p}
}

// retry runs f until it succeeds, fails for good, or attempts run out,
// waiting base×2^n (with jitter) between tries. Only errors that look like
// the store being unreachable or busy are retried.
func retry(ctx context.Context, attempts int, base time.Duration, f func() error) error {
	var err error
	for i := 0; i < attempts; i++ {
		if err = f(); err == nil || !transient(err) {
			return err
		}
		d := base << i
		d += time.Duration(rand.Int64N(int64(d)/2 + 1))
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		}
	}
	return fmt.Errorf("object storage unreachable after %d attempts: %w", attempts, err)
}

func transient(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	resp := minio.ToErrorResponse(err)
	switch resp.StatusCode {
	case 500, 502, 503, 504:
		return true
	}
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "connection reset") || strings.Contains(s, "EOF")
}

// upload puts a local file and returns its sha256 and size, hashing as it
// sends (one read of the file; the payload goes unsigned, as over TLS).
// Large files go up in parts.
func upload(ctx context.Context, c *minio.Client, dst S3URI, file string, attempts int) (string, int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	var sum string
	err = retry(ctx, attempts, 250*time.Millisecond, func() error {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		h := sha256.New()
		_, err := c.PutObject(ctx, dst.Bucket, dst.Key, io.TeeReader(f, h), fi.Size(), minio.PutObjectOptions{
			ContentType:          contentType(file),
			PartSize:             64 << 20,
			DisableContentSha256: true,
		})
		if err == nil {
			sum = hex.EncodeToString(h.Sum(nil))
		}
		return err
	})
	if err != nil {
		return "", 0, fmt.Errorf("uploading %s to %s: %w", filepath.Base(file), dst, err)
	}
	return sum, fi.Size(), nil
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
