package objstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// PartSize is the size of the parts large objects are put in.
const PartSize = 64 << 20

// Credentials are S3 keys; all empty means anonymous.
type Credentials struct {
	AccessKey, SecretKey, SessionToken string
}

// MinIO is a Store on an S3 server through minio-go.
type MinIO struct{ c *minio.Client }

var (
	_ Store  = (*MinIO)(nil)
	_ Copier = (*MinIO)(nil)
)

// NewMinIO connects to endpoint, host:port; an http:// or https:// prefix
// there decides secure.
func NewMinIO(endpoint string, creds Credentials, secure bool) (*MinIO, error) {
	switch {
	case strings.HasPrefix(endpoint, "https://"):
		endpoint, secure = strings.TrimPrefix(endpoint, "https://"), true
	case strings.HasPrefix(endpoint, "http://"):
		endpoint, secure = strings.TrimPrefix(endpoint, "http://"), false
	}
	c, err := minio.New(strings.TrimSuffix(endpoint, "/"), &minio.Options{
		Creds:  credentials.NewStaticV4(creds.AccessKey, creds.SecretKey, creds.SessionToken),
		Secure: secure,
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to %q: %w", endpoint, err)
	}
	return &MinIO{c: c}, nil
}

// FromMinIO makes a Store of a minio-go client.
func FromMinIO(c *minio.Client) *MinIO { return &MinIO{c: c} }

// Client is the minio-go client underneath, for what the interface lacks.
func (m *MinIO) Client() *minio.Client { return m.c }

// Get implements Getter.
func (m *MinIO) Get(ctx context.Context, u URI, opts ...GetOption) (io.ReadCloser, Info, error) {
	o, err := ResolveGet(opts...)
	if err != nil {
		return nil, Info{}, fmt.Errorf("getting %s: %w", u, err)
	}
	mo := minio.GetObjectOptions{VersionID: o.VersionID}
	if o.Offset > 0 || o.Length > 0 {
		end := int64(0)
		if o.Length > 0 {
			end = o.Offset + o.Length - 1
		}
		if err := mo.SetRange(o.Offset, end); err != nil {
			return nil, Info{}, fmt.Errorf("getting %s: %w", u, err)
		}
	}
	body, oi, hdr, err := minio.Core{Client: m.c}.GetObject(ctx, u.Bucket, u.Key, mo)
	if err != nil {
		return nil, Info{}, fmt.Errorf("getting %s: %w", u, mapErr(err))
	}
	info := toInfo(u, oi)
	if total, ok := rangeTotal(hdr.Get("Content-Range")); ok {
		info.Size = total
	}
	if o.MaxSize < 0 {
		return body, info, nil
	}
	// oi.Size is what this answer carries (the range, for a ranged read);
	// -1 when the server did not say.
	if oi.Size > o.MaxSize {
		body.Close()
		return nil, info, fmt.Errorf("getting %s: %w: %d bytes, at most %d allowed", u, ErrTooLarge, oi.Size, o.MaxSize)
	}
	return &capped{r: body, left: o.MaxSize + 1, u: u, max: o.MaxSize}, info, nil
}

// rangeTotal reads the object size from "bytes 0-9/100".
func rangeTotal(cr string) (int64, bool) {
	_, total, ok := strings.Cut(cr, "/")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(total, 10, 64)
	return n, err == nil
}

// Put implements Putter.
func (m *MinIO) Put(ctx context.Context, u URI, r io.Reader, size int64, opts ...PutOption) (Info, error) {
	o, err := ResolvePut(opts...)
	if err != nil {
		return Info{}, fmt.Errorf("putting %s: %w", u, err)
	}
	h := sha256.New()
	n := &counter{}
	// The payload goes unsigned (as over TLS): the sha256 is computed here,
	// in the one read of r.
	up, err := m.c.PutObject(ctx, u.Bucket, u.Key, io.TeeReader(r, io.MultiWriter(h, n)), size, minio.PutObjectOptions{
		ContentType:          o.ContentType,
		PartSize:             PartSize,
		DisableContentSha256: true,
	})
	if err != nil {
		return Info{}, fmt.Errorf("putting %s: %w", u, mapErr(err))
	}
	if size >= 0 && n.n != size {
		return Info{}, fmt.Errorf("putting %s: read %d bytes, %d announced", u, n.n, size)
	}
	return Info{URI: u, Size: up.Size, ETag: up.ETag, VersionID: up.VersionID, ContentType: o.ContentType,
		LastModified: up.LastModified, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// List implements Lister.
func (m *MinIO) List(ctx context.Context, prefix URI) iter.Seq2[Info, error] {
	return func(yield func(Info, error) bool) {
		for oi := range m.c.ListObjectsIter(ctx, prefix.Bucket, minio.ListObjectsOptions{Prefix: prefix.Key, Recursive: true}) {
			if oi.Err != nil {
				yield(Info{}, fmt.Errorf("listing %s: %w", prefix, mapErr(oi.Err)))
				return
			}
			if !yield(toInfo(URI{prefix.Bucket, oi.Key}, oi), nil) {
				return
			}
		}
	}
}

// Stat implements Stater.
func (m *MinIO) Stat(ctx context.Context, u URI, opts ...GetOption) (Info, error) {
	o, err := ResolveGet(opts...)
	if err != nil {
		return Info{}, fmt.Errorf("describing %s: %w", u, err)
	}
	oi, err := m.c.StatObject(ctx, u.Bucket, u.Key, minio.StatObjectOptions{VersionID: o.VersionID})
	if err != nil {
		return Info{}, fmt.Errorf("describing %s: %w", u, mapErr(err))
	}
	return toInfo(u, oi), nil
}

// maxCopySize is the largest object one server-side CopyObject request
// copies on S3 (5 GiB); larger ones are copied in parts.
const maxCopySize = 5 << 30

// Copy implements Copier with a server-side copy: one CopyObject request
// up to 5 GiB, a multipart copy (UploadPartCopy) above. The copy is of the
// version Copy describes first; a source changed in between fails the
// copy (412), to be tried again.
func (m *MinIO) Copy(ctx context.Context, dst, src URI) (Info, error) {
	oi, err := m.c.StatObject(ctx, src.Bucket, src.Key, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, fmt.Errorf("copying %s to %s: %w", src, dst, mapErr(err))
	}
	from := minio.CopySrcOptions{Bucket: src.Bucket, Object: src.Key, MatchETag: oi.ETag}
	to := minio.CopyDestOptions{Bucket: dst.Bucket, Object: dst.Key}
	var up minio.UploadInfo
	if oi.Size <= maxCopySize {
		up, err = m.c.CopyObject(ctx, to, from)
	} else {
		up, err = m.c.ComposeObject(ctx, to, from)
	}
	if err != nil {
		return Info{}, fmt.Errorf("copying %s to %s: %w", src, dst, mapErr(err))
	}
	return Info{URI: dst, Size: oi.Size, ETag: up.ETag, VersionID: up.VersionID, ContentType: oi.ContentType,
		LastModified: up.LastModified}, nil
}

// PresignGet implements Presigner.
func (m *MinIO) PresignGet(ctx context.Context, u URI, expiry time.Duration) (*url.URL, error) {
	p, err := m.c.PresignedGetObject(ctx, u.Bucket, u.Key, expiry, nil)
	if err != nil {
		return nil, fmt.Errorf("presigning a get of %s: %w", u, err)
	}
	return p, nil
}

// PresignPut implements Presigner.
func (m *MinIO) PresignPut(ctx context.Context, u URI, expiry time.Duration) (*url.URL, error) {
	p, err := m.c.PresignedPutObject(ctx, u.Bucket, u.Key, expiry)
	if err != nil {
		return nil, fmt.Errorf("presigning a put of %s: %w", u, err)
	}
	return p, nil
}

func toInfo(u URI, oi minio.ObjectInfo) Info {
	return Info{URI: u, Size: oi.Size, ETag: oi.ETag, VersionID: oi.VersionID, ContentType: oi.ContentType, LastModified: oi.LastModified}
}

// mapErr marks the store's "not there" answers with ErrNotFound, keeping
// the answer (errors.As still finds the minio.ErrorResponse).
func mapErr(err error) error {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		switch {
		case resp.Code == "NoSuchKey", resp.Code == "NoSuchBucket", resp.Code == "NoSuchVersion", resp.StatusCode == 404:
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		}
	}
	return err
}
