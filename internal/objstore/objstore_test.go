package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/minio/minio-go/v7"
)

func TestParseURI(t *testing.T) {
	cases := []struct {
		in      string
		want    URI
		wantErr bool
	}{
		{"s3://runs/r1/", URI{"runs", "r1/"}, false},
		{"s3://runs", URI{"runs", ""}, false},
		{"s3://datasets/cats/v1/manifest.json", URI{"datasets", "cats/v1/manifest.json"}, false},
		{"s3:///key", URI{}, true},
		{"http://runs/r1", URI{}, true},
		{"runs/r1", URI{}, true},
	}
	for _, c := range cases {
		got, err := ParseURI(c.in)
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("ParseURI(%q) = %v, %v; want %v (error %v)", c.in, got, err, c.want, c.wantErr)
		}
	}
}

func TestJoin(t *testing.T) {
	cases := []struct {
		u    URI
		p    string
		want string
	}{
		{URI{"runs", "r1/"}, "logs/run.log", "s3://runs/r1/logs/run.log"},
		{URI{"runs", "r1"}, "logs/run.log", "s3://runs/r1/logs/run.log"},
		{URI{"runs", ""}, "a", "s3://runs/a"},
	}
	for _, c := range cases {
		if got := c.u.Join(c.p).String(); got != c.want {
			t.Errorf("%v.Join(%q) = %s, want %s", c.u, c.p, got, c.want)
		}
	}
}

// TestTransient: only network and server-side trouble is retried; a local
// file-system error is not, though a syscall.Errno satisfies net.Error.
func TestTransient(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	cases := []struct {
		desc string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"EISDIR creating a file", &os.PathError{Op: "open", Path: "/data/x", Err: syscall.EISDIR}, false},
		{"EINVAL", fmt.Errorf("downloading: %w", &os.PathError{Op: "write", Path: "/data/x", Err: syscall.EINVAL}), false},
		{"ENOSPC", &os.PathError{Op: "write", Path: "/data/x", Err: syscall.ENOSPC}, false},
		{"a bare errno", syscall.EISDIR, false},
		{"connection refused", refused, true},
		{"transport error", &url.Error{Op: "Get", URL: "http://x/", Err: io.EOF}, true},
		{"reset while reading", fmt.Errorf("reading: %w", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), true},
		{"body cut short", io.ErrUnexpectedEOF, true},
		{"503", minio.ErrorResponse{StatusCode: 503, Code: "ServiceUnavailable"}, true},
		{"SlowDown", fmt.Errorf("getting: %w", minio.ErrorResponse{StatusCode: 503, Code: "SlowDown"}), true},
		{"500", minio.ErrorResponse{StatusCode: 500, Code: "InternalError"}, true},
		{"429", minio.ErrorResponse{StatusCode: 429}, true},
		{"403", minio.ErrorResponse{StatusCode: 403, Code: "AccessDenied"}, false},
		{"not found", mapErr(minio.ErrorResponse{StatusCode: 404, Code: "NoSuchKey"}), false},
		{"too large", fmt.Errorf("x: %w", ErrTooLarge), false},
		{"cancelled", &url.Error{Op: "Get", URL: "http://x/", Err: context.Canceled}, false},
		{"a plain error", errors.New("sha256 mismatch"), false},
	}
	for _, c := range cases {
		if got := Transient(c.err); got != c.want {
			t.Errorf("%s: Transient(%v) = %v, want %v", c.desc, c.err, got, c.want)
		}
	}
}

func TestResolveGet(t *testing.T) {
	got, err := ResolveGet()
	if err != nil || got != (GetOptions{MaxSize: -1}) {
		t.Errorf("ResolveGet() = %+v, %v; want no limit", got, err)
	}
	got, err = ResolveGet(WithVersion("v1"), WithMaxSize(0), WithRange(3, 4))
	if diff := cmp.Diff(GetOptions{VersionID: "v1", MaxSize: 0, Offset: 3, Length: 4}, got); diff != "" || err != nil {
		t.Errorf("ResolveGet(...) (-want +got):\n%s (err %v)", diff, err)
	}
	for _, bad := range []GetOption{WithMaxSize(-1), WithRange(-1, 0), WithRange(0, -1)} {
		if _, err := ResolveGet(bad); err == nil {
			t.Error("ResolveGet accepted a negative value")
		}
	}
	if _, err := ResolvePut(WithContentType("")); err == nil {
		t.Error("ResolvePut accepted an empty content type")
	}
}

// TestCapped reads at most max+1 bytes of its source.
func TestCapped(t *testing.T) {
	for _, c := range []struct {
		size, max int64
		tooLarge  bool
	}{{0, 0, false}, {5, 5, false}, {6, 5, true}, {1 << 20, 1, true}, {1, 0, true}} {
		src := &countingReader{r: strings.NewReader(strings.Repeat("x", int(c.size)))}
		r := &capped{r: io.NopCloser(src), left: c.max + 1, max: c.max}
		b, err := io.ReadAll(r)
		if errors.Is(err, ErrTooLarge) != c.tooLarge || int64(len(b)) > c.max {
			t.Errorf("capped(size %d, max %d) = %d bytes, %v", c.size, c.max, len(b), err)
		}
		if src.n > c.max+1 {
			t.Errorf("capped(size %d, max %d) read %d bytes of its source, want at most %d", c.size, c.max, src.n, c.max+1)
		}
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestFromEnv(t *testing.T) {
	for _, k := range []string{"VP_S3_ENDPOINT", "VP_S3_ACCESS_KEY", "VP_S3_SECRET_KEY", "VP_S3_SESSION_TOKEN", "VP_S3_SECURE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} {
		t.Setenv(k, "")
	}
	if _, err := FromEnv(); !errors.Is(err, ErrNoEndpoint) {
		t.Errorf("FromEnv() with no endpoint = %v, want ErrNoEndpoint", err)
	}
	t.Setenv("VP_S3_ENDPOINT", "https://s3.example:9000")
	t.Setenv("AWS_ACCESS_KEY_ID", "aws-key")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
	t.Setenv("VP_S3_SECRET_KEY", "vp-secret")
	m, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	v, err := m.Client().GetCreds()
	if err != nil {
		t.Fatal(err)
	}
	if v.AccessKeyID != "aws-key" || v.SecretAccessKey != "vp-secret" {
		t.Errorf("credentials = %q/%q, want the AWS access key and the VP secret", v.AccessKeyID, v.SecretAccessKey)
	}
	if got := m.Client().EndpointURL().String(); got != "https://s3.example:9000" {
		t.Errorf("endpoint = %s, want https://s3.example:9000", got)
	}
	t.Setenv("VP_S3_ENDPOINT", "s3.example:9000")
	t.Setenv("VP_S3_SECURE", "true")
	if m, err := FromEnv(); err != nil || m.Client().EndpointURL().Scheme != "https" {
		t.Errorf("FromEnv() with VP_S3_SECURE=true = %v, %v; want https", m, err)
	}
	t.Setenv("VP_S3_SECURE", "maybe")
	if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), "VP_S3_SECURE") {
		t.Errorf("FromEnv() with VP_S3_SECURE=maybe = %v", err)
	}
}
