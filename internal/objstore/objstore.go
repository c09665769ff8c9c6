package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/url"
	"time"
)

// Info describes a stored object.
type Info struct {
	URI          URI
	Size         int64 // the object's size (for a ranged Get too)
	ETag         string
	VersionID    string // empty when the bucket is not versioned
	ContentType  string
	LastModified time.Time
	// SHA256 is the hex sha256 of the bytes Put sent, computed while
	// sending; empty elsewhere.
	SHA256 string
}

// Getter reads objects.
type Getter interface {
	// Get opens the object at u. The reader yields the object (or the
	// range asked for) and must be closed. A missing object, version or
	// bucket is ErrNotFound; an object over WithMaxSize is ErrTooLarge,
	// refused before any of it is read when the store states its size, and
	// cut at the limit plus one byte when it does not.
	Get(ctx context.Context, u URI, opts ...GetOption) (io.ReadCloser, Info, error)
}

// Putter writes objects.
type Putter interface {
	// Put stores size bytes from r at u (size -1: until r ends), hashing
	// them with sha256 as they are sent (Info.SHA256). Objects over 64 MiB
	// go up in parts of 64 MiB. Put does not retry: r may not be read
	// again.
	Put(ctx context.Context, u URI, r io.Reader, size int64, opts ...PutOption) (Info, error)
}

// Lister lists objects.
type Lister interface {
	// List yields every object whose key starts with prefix.Key, in key
	// order, and stops at the first error.
	List(ctx context.Context, prefix URI) iter.Seq2[Info, error]
}

// Stater describes objects.
type Stater interface {
	// Stat describes the object at u (ErrNotFound when it is not there);
	// of the options, only WithVersion applies.
	Stat(ctx context.Context, u URI, opts ...GetOption) (Info, error)
}

// Presigner makes URLs that let a client without credentials get or put
// one object until they expire.
type Presigner interface {
	PresignGet(ctx context.Context, u URI, expiry time.Duration) (*url.URL, error)
	PresignPut(ctx context.Context, u URI, expiry time.Duration) (*url.URL, error)
}

// Copier copies objects inside the store, without the bytes passing
// through the caller: an optional ability, which callers type-assert a
// Store for.
type Copier interface {
	// Copy makes dst a copy of the latest version of src, with its content
	// type, and describes dst (its Size and ContentType are src's; SHA256
	// is empty). Copying again the same object to the same key is harmless.
	// A missing src, or a missing bucket of either, is ErrNotFound.
	Copy(ctx context.Context, dst, src URI) (Info, error)
}

// Store is all of it: what the run agent and the functions take.
type Store interface {
	Getter
	Putter
	Lister
	Stater
	Presigner
}

// GetOptions are the resolved options of a Get or a Stat.
type GetOptions struct {
	VersionID string
	// MaxSize is the most bytes the read may yield; -1 for no limit.
	MaxSize int64
	// Offset and Length select a range; Length 0 reads to the end.
	Offset, Length int64
}

// GetOption sets how an object is read.
type GetOption func(*GetOptions) error

// WithVersion reads one version of the object instead of the latest.
func WithVersion(id string) GetOption {
	return func(o *GetOptions) error { o.VersionID = id; return nil }
}

// WithMaxSize refuses an object (or range) over n bytes with ErrTooLarge.
func WithMaxSize(n int64) GetOption {
	return func(o *GetOptions) error {
		if n < 0 {
			return fmt.Errorf("size limit %d is negative", n)
		}
		o.MaxSize = n
		return nil
	}
}

// WithRange reads length bytes from offset (length 0: to the end); offset
// must be within the object.
func WithRange(offset, length int64) GetOption {
	return func(o *GetOptions) error {
		if offset < 0 || length < 0 {
			return fmt.Errorf("range %d+%d is negative", offset, length)
		}
		o.Offset, o.Length = offset, length
		return nil
	}
}

// ResolveGet applies opts to the defaults (latest version, no limit, the
// whole object), for implementations of Getter and Stater.
func ResolveGet(opts ...GetOption) (GetOptions, error) {
	o := GetOptions{MaxSize: -1}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

// PutOptions are the resolved options of a Put.
type PutOptions struct {
	ContentType string
}

// PutOption sets how an object is stored.
type PutOption func(*PutOptions) error

// WithContentType sets the object's Content-Type (default
// application/octet-stream).
func WithContentType(ct string) PutOption {
	return func(o *PutOptions) error {
		if ct == "" {
			return errors.New("content type is empty")
		}
		o.ContentType = ct
		return nil
	}
}

// ResolvePut applies opts to the defaults, for implementations of Putter.
func ResolvePut(opts ...PutOption) (PutOptions, error) {
	o := PutOptions{ContentType: "application/octet-stream"}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

// capped reads at most max+1 bytes of r: reading past max is ErrTooLarge.
type capped struct {
	r    io.ReadCloser
	left int64 // bytes still allowed, plus the one that tells
	u    URI
	max  int64
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("reading %s: %w: more than %d bytes", c.u, ErrTooLarge, c.max)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left <= 0 {
		return n - 1, fmt.Errorf("reading %s: %w: more than %d bytes", c.u, ErrTooLarge, c.max)
	}
	return n, err
}

func (c *capped) Close() error { return c.r.Close() }
