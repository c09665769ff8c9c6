package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"github.com/vision-platform/vp/internal/dataset"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/testsupport"
)

// countingStore is the real store, counting the Gets made and the bytes
// read through them.
type countingStore struct {
	objstore.Getter
	gets, bytes atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, u objstore.URI, opts ...objstore.GetOption) (io.ReadCloser, objstore.Info, error) {
	c.gets.Add(1)
	r, info, err := c.Getter.Get(ctx, u, opts...)
	if err != nil {
		return nil, info, err
	}
	return &countingBody{ReadCloser: r, n: &c.bytes}, info, nil
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func hexSHA(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// putManifest stores a manifest of files under prefix and returns the
// dataset reference and the manifest's object version.
func putManifest(t *testing.T, s objstore.Putter, bucket, prefix string, files ...dataset.File) (events.DatasetRef, string) {
	t.Helper()
	b, err := json.Marshal(dataset.Manifest{Version: 1, Files: files})
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Put(context.Background(), objstore.URI{Bucket: bucket, Key: prefix + dataset.ManifestName}, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return events.DatasetRef{Bucket: bucket, Prefix: prefix, Digest: "sha256:" + info.SHA256, Task: events.TaskClassification, Format: events.FormatImageFolder}, info.VersionID
}

func putObject(t *testing.T, s objstore.Putter, bucket, key string, data []byte) objstore.Info {
	t.Helper()
	info, err := s.Put(context.Background(), objstore.URI{Bucket: bucket, Key: key}, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// regularFiles lists the files under dir, temporary ones included.
func regularFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func startStore(t *testing.T, buckets ...string) *objstore.MinIO {
	t.Helper()
	testsupport.Integration(t)
	m := testsupport.StartMinIO(t)
	for _, b := range buckets {
		m.Bucket(t, b)
	}
	return objstore.FromMinIO(m.Client)
}

// TestInt_DownloadOversizedObject (issue #11, 12): a manifest entry of size
// 1 for an 8 MiB object reads no more than 2 bytes of it, fails, and leaves
// no file behind.
func TestInt_DownloadOversizedObject(t *testing.T) {
	s := startStore(t, "datasets")
	big := make([]byte, 8<<20)
	rand.Read(big)
	putObject(t, s, "datasets", "big/v1/data.bin", big)
	ref, _ := putManifest(t, s, "datasets", "big/v1/", dataset.File{Path: "data.bin", Size: 1, SHA256: hexSHA(big[:1])})
	cs := &countingStore{Getter: s}
	dir := t.TempDir()
	_, _, err := Download(context.Background(), cs, ref, dir, DownloadOptions{Attempts: 3})
	if !errors.Is(err, objstore.ErrTooLarge) {
		t.Errorf("Download() = %v, want objstore.ErrTooLarge", err)
	}
	if got := regularFiles(t, dir); len(got) != 0 {
		t.Errorf("Download() left %q behind", got)
	}
	// Of the object, at most size+1 bytes were read: the rest is the manifest.
	mb, err := json.Marshal(dataset.Manifest{Version: 1, Files: []dataset.File{{Path: "data.bin", Size: 1, SHA256: hexSHA(big[:1])}}})
	if err != nil {
		t.Fatal(err)
	}
	if read := cs.bytes.Load() - int64(len(mb)); read > 2 {
		t.Errorf("Download() read %d bytes of the object, want at most 2", read)
	}
	if n := cs.gets.Load(); n != 2 {
		t.Errorf("Download() made %d Gets, want 2 (manifest, object; a too-large object is not retried)", n)
	}
}

// TestInt_DownloadRemovesPartialFiles (issue #11, 12): a file that fails its
// check is not left on disk, under its name or a temporary one.
func TestInt_DownloadRemovesPartialFiles(t *testing.T) {
	s := startStore(t, "datasets")
	data := []byte("twelve bytes")
	putObject(t, s, "datasets", "ds/v1/a.txt", data)
	putObject(t, s, "datasets", "ds/v1/b.txt", data)
	cases := []struct {
		desc string
		f    dataset.File
		want string
	}{
		{"wrong sha256", dataset.File{Path: "a.txt", Size: 12, SHA256: strings.Repeat("0", 64)}, "sha256"},
		{"shorter than the manifest says", dataset.File{Path: "b.txt", Size: 13, SHA256: hexSHA(data)}, "12 bytes, the manifest says 13"},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			ref, _ := putManifest(t, s, "datasets", "ds/v1/", c.f)
			dir := t.TempDir()
			_, _, err := Download(context.Background(), s, ref, dir, DownloadOptions{Attempts: 2})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Download() = %v, want an error with %q", err, c.want)
			}
			if got := regularFiles(t, dir); len(got) != 0 {
				t.Errorf("Download() left %q behind", got)
			}
		})
	}
}

// TestInt_DownloadPinsVersions (issue #11, 12): in a versioned bucket, a
// file overwritten after the manifest was written is still read at the
// version the manifest names, and the manifest at the version the event
// names.
func TestInt_DownloadPinsVersions(t *testing.T) {
	testsupport.Integration(t)
	m := testsupport.StartMinIO(t)
	m.Bucket(t, "datasets")
	if err := m.Client.EnableVersioning(context.Background(), "datasets"); err != nil {
		t.Fatal(err)
	}
	s := objstore.FromMinIO(m.Client)
	v1 := putObject(t, s, "datasets", "ds/v1/a.txt", []byte("first"))
	ref, manifestVersion := putManifest(t, s, "datasets", "ds/v1/", dataset.File{Path: "a.txt", Size: 5, SHA256: hexSHA([]byte("first")), VersionID: v1.VersionID})
	// Both the file and the manifest are overwritten afterwards.
	putObject(t, s, "datasets", "ds/v1/a.txt", []byte("other"))
	putManifest(t, s, "datasets", "ds/v1/", dataset.File{Path: "a.txt", Size: 5, SHA256: hexSHA([]byte("other"))})
	dir := t.TempDir()
	if _, _, err := Download(context.Background(), s, ref, dir, DownloadOptions{ManifestVersion: manifestVersion}); err != nil {
		t.Fatalf("Download() = %v", err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "a.txt"))
	if err != nil || string(got) != "first" {
		t.Errorf("a.txt = %q, %v; want the version the manifest names, \"first\"", got, err)
	}
	// Without the manifest's version, the latest manifest is not the job's.
	if _, _, err := Download(context.Background(), s, ref, t.TempDir(), DownloadOptions{}); err == nil || !strings.Contains(err.Error(), "the job names") {
		t.Errorf("Download() of the latest manifest = %v, want a digest mismatch", err)
	}
}

// TestInt_DownloadLocalErrorNotRetried (issue #11, 13): a file that cannot
// be written locally (its path is a directory: EISDIR) fails at once, as a
// local error, not after every attempt as "object storage unreachable".
func TestInt_DownloadLocalErrorNotRetried(t *testing.T) {
	s := startStore(t, "datasets")
	data := []byte("content")
	putObject(t, s, "datasets", "ds/v1/a.txt", data)
	ref, _ := putManifest(t, s, "datasets", "ds/v1/", dataset.File{Path: "a.txt", Size: 7, SHA256: hexSHA(data)})
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a.txt", "in-the-way"), 0o755); err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Getter: s}
	_, _, err := Download(context.Background(), cs, ref, dir, DownloadOptions{Attempts: 4})
	if err == nil || strings.Contains(err.Error(), "unreachable") {
		t.Errorf("Download() = %v, want a local error, not \"unreachable\"", err)
	}
	if !errors.Is(err, syscall.EISDIR) && !errors.Is(err, syscall.EEXIST) && !errors.Is(err, syscall.ENOTEMPTY) {
		t.Errorf("Download() = %v, want the file-system error", err)
	}
	if n := cs.gets.Load(); n != 2 {
		t.Errorf("Download() made %d Gets, want 2 (manifest, one try of the file)", n)
	}
}

// TestRetryClassifies (issue #11, 13): only the store's transient errors are
// retried; local errors end the retry at once.
func TestRetryClassifies(t *testing.T) {
	cases := []struct {
		desc      string
		err       error
		wantCalls int
	}{
		{"EISDIR", &os.PathError{Op: "open", Path: "/d/x", Err: syscall.EISDIR}, 1},
		{"EINVAL", &os.PathError{Op: "open", Path: "/d/x", Err: syscall.EINVAL}, 1},
		{"not found", objstore.ErrNotFound, 1},
		{"unexpected EOF from the store", io.ErrUnexpectedEOF, 3},
	}
	for _, c := range cases {
		calls := 0
		err := retry(context.Background(), 3, time.Microsecond, func() error { calls++; return c.err })
		if calls != c.wantCalls || !errors.Is(err, c.err) {
			t.Errorf("%s: retry() called f %d times and returned %v; want %d calls", c.desc, calls, err, c.wantCalls)
		}
		if unreachable := strings.Contains(err.Error(), "unreachable"); unreachable != (c.wantCalls > 1) {
			t.Errorf("%s: retry() = %q; \"unreachable\" only for a store that stayed unreachable", c.desc, err)
		}
	}
}

// TestInt_DownloadManifestCap (issue #11, 13): a manifest over the limit is
// refused without being read into memory; the default limit is 64 MiB.
func TestInt_DownloadManifestCap(t *testing.T) {
	s := startStore(t, "datasets")
	var files []dataset.File
	for i := range 100 {
		files = append(files, dataset.File{Path: "f" + strings.Repeat("x", i), Size: 1, SHA256: strings.Repeat("a", 64)})
	}
	ref, _ := putManifest(t, s, "datasets", "ds/v1/", files...)
	cs := &countingStore{Getter: s}
	_, _, err := Download(context.Background(), cs, ref, t.TempDir(), DownloadOptions{MaxManifestSize: 1024})
	if !errors.Is(err, objstore.ErrTooLarge) {
		t.Errorf("Download() of a manifest over 1 KiB with a 1 KiB limit = %v, want objstore.ErrTooLarge", err)
	}
	if n := cs.bytes.Load(); n > 1025 {
		t.Errorf("Download() read %d bytes of the manifest, want at most 1025", n)
	}
	var o DownloadOptions
	o.defaults()
	var c Config
	c.defaults()
	if o.MaxManifestSize != 64<<20 || c.MaxManifestSize != 64<<20 {
		t.Errorf("default manifest limits %d (Download), %d (Config); want 64 MiB", o.MaxManifestSize, c.MaxManifestSize)
	}
}
