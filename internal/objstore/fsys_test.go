package objstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"iter"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/minio/minio-go/v7"

	"github.com/vision-platform/vp/internal/testsupport"
)

// listing is a fixed listing (keys in order, content from the map): just
// enough of a store for the tree rules of NewFS that MinIO itself refuses
// to hold (a key that is also a folder, "a//b").
type listing struct {
	keys []string
	data map[string]string
}

func (l listing) List(_ context.Context, prefix URI) iter.Seq2[Info, error] {
	return func(yield func(Info, error) bool) {
		for _, k := range l.keys {
			if strings.HasPrefix(k, prefix.Key) && !yield(Info{URI: URI{prefix.Bucket, k}, Size: int64(len(l.data[k]))}, nil) {
				return
			}
		}
	}
}

func (l listing) Get(_ context.Context, u URI, _ ...GetOption) (io.ReadCloser, Info, error) {
	d, ok := l.data[u.Key]
	if !ok {
		return nil, Info{}, ErrNotFound
	}
	return io.NopCloser(strings.NewReader(d)), Info{URI: u, Size: int64(len(d))}, nil
}

func TestFSTree(t *testing.T) {
	l := listing{
		keys: []string{"ds/", "ds/a", "ds/a/b", "ds/c/", "ds/c/d", "ds/e//f", "ds/g/../h", "ds/i/", "ds/i"},
		data: map[string]string{"ds/a": "file a", "ds/c/d": "dd", "ds/e//f": "x", "ds/g/../h": "y", "ds/i": "z"},
	}
	f, err := NewFS(context.Background(), l, URI{"b", "ds"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ds/a/b", "ds/e//f", "ds/g/../h", "ds/i"}, f.Skipped()); diff != "" {
		t.Errorf("Skipped() (-want +got):\n%s", diff)
	}
	if err := fstest.TestFS(f, "a", "c/d", "i"); err != nil {
		t.Error(err)
	}
	if info, err := fs.Stat(f, "i"); err != nil || !info.IsDir() {
		t.Errorf("Stat(i) = %v, %v; want the folder its marker made", info, err)
	}
	if _, err := f.Open("../x"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("Open(../x) = %v, want ErrInvalid", err)
	}
	if _, err := f.Open("a/b"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(a/b) = %v, want ErrNotExist", err)
	}
	if _, err := NewFS(context.Background(), l, URI{"b", "ds/"}, WithMaxObjects(3)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("NewFS(max 3 objects) = %v, want ErrTooLarge", err)
	}
	if got := f.URI("c/d"); got != (URI{"b", "ds/c/d"}) {
		t.Errorf("URI(c/d) = %v", got)
	}
}

func TestInt_FS(t *testing.T) {
	testsupport.Integration(t)
	m := testsupport.StartMinIO(t)
	m.Bucket(t, "bkt")
	s := FromMinIO(m.Client)
	ctx := context.Background()
	files := map[string]string{
		"set/dataset.yaml":          "name: set\n",
		"set/train/cat/1.png":       "one",
		"set/train/cat/2 two.png":   "two two",
		"set/train/dog/ü.png":       "umlaut",
		"set/val/dog/x.png":         "",
		"set/deep/a/b/c/d/e.txt":    strings.Repeat("e", 100_000),
		"other/not-in-the-view.txt": "no",
		"settle/nor-this.txt":       "no",
	}
	for k, v := range files {
		put(t, s, URI{"bkt", k}, v)
	}

	f, err := NewFS(ctx, s, URI{"bkt", "set"})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for k := range files {
		if rel, ok := strings.CutPrefix(k, "set/"); ok {
			want = append(want, rel)
		}
	}
	if err := fstest.TestFS(f, want...); err != nil {
		t.Error(err)
	}
	var walked []string
	err = fs.WalkDir(f, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			walked = append(walked, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	wantWalk := []string{"dataset.yaml", "deep/a/b/c/d/e.txt", "train/cat/1.png", "train/cat/2 two.png", "train/dog/ü.png", "val/dog/x.png"}
	if diff := cmp.Diff(wantWalk, walked); diff != "" {
		t.Errorf("WalkDir (-want +got):\n%s", diff)
	}
	for _, p := range walked {
		b, err := fs.ReadFile(f, p)
		if err != nil || !bytes.Equal(b, []byte(files["set/"+p])) {
			t.Errorf("ReadFile(%s) = %d bytes, %v; want %d bytes", p, len(b), err, len(files["set/"+p]))
		}
	}
	info, err := fs.Stat(f, "train/cat/1.png")
	if err != nil {
		t.Fatal(err)
	}
	if oi, ok := info.Sys().(Info); !ok || oi.URI != (URI{"bkt", "set/train/cat/1.png"}) || oi.ETag == "" || info.Size() != 3 {
		t.Errorf("Stat(train/cat/1.png) = %+v (Sys %+v), want the object's Info", info, info.Sys())
	}

	t.Run("an object changed after the listing is not read past its listed size", func(t *testing.T) {
		put(t, s, URI{"bkt", "set/train/cat/1.png"}, "now much longer")
		_, err := fs.ReadFile(f, "train/cat/1.png")
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("ReadFile() of a grown object = %v, want ErrTooLarge", err)
		}
	})
	t.Run("an object deleted after the listing is a read error", func(t *testing.T) {
		if err := m.Client.RemoveObject(ctx, "bkt", "set/val/dog/x.png", minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err := fs.ReadFile(f, "val/dog/x.png")
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("ReadFile() of a deleted object = %v, want ErrNotFound", err)
		}
	})
	t.Run("prefetched files are read from memory", func(t *testing.T) {
		f, err := NewFS(ctx, s, URI{"bkt", "set/"})
		if err != nil {
			t.Fatal(err)
		}
		var asked []string
		err = f.Prefetch(4, func(p string, info Info) bool {
			asked = append(asked, p)
			return strings.HasPrefix(p, "train/dog/") && info.Size < 100
		})
		if err != nil {
			t.Fatalf("Prefetch() = %v", err)
		}
		if diff := cmp.Diff([]string{"dataset.yaml", "deep/a/b/c/d/e.txt", "train/cat/1.png", "train/cat/2 two.png", "train/dog/ü.png"}, asked); diff != "" {
			t.Errorf("Prefetch() asked about (-want +got):\n%s", diff)
		}
		for _, k := range []string{"set/train/dog/ü.png", "set/dataset.yaml"} {
			if err := m.Client.RemoveObject(ctx, "bkt", k, minio.RemoveObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if b, err := fs.ReadFile(f, "train/dog/ü.png"); err != nil || string(b) != "umlaut" {
			t.Errorf("ReadFile() of a prefetched file deleted since = %q, %v; want its content", b, err)
		}
		if _, err := fs.ReadFile(f, "dataset.yaml"); !errors.Is(err, ErrNotFound) {
			t.Errorf("ReadFile() of a file not prefetched, deleted since = %v, want ErrNotFound", err)
		}
	})
	t.Run("a missing bucket", func(t *testing.T) {
		if _, err := NewFS(ctx, s, URI{"nobucket", "x/"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("NewFS(nobucket) = %v, want ErrNotFound", err)
		}
	})
	t.Run("an empty prefix is an empty folder", func(t *testing.T) {
		f, err := NewFS(ctx, s, URI{"bkt", "nothing-here/"})
		if err != nil {
			t.Fatal(err)
		}
		if ents, err := fs.ReadDir(f, "."); err != nil || len(ents) != 0 {
			t.Errorf("ReadDir(.) = %v, %v; want nothing", ents, err)
		}
	})
}
