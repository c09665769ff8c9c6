package weights_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/minio/minio-go/v7"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/testsupport"
	"github.com/vision-platform/vp/internal/weights"
)

var resnet = events.ModelRef{Framework: "torchvision", Name: "resnet18"}

func TestExt(t *testing.T) {
	for file, want := range map[string]string{
		"resnet18-f37072fd.pth":     ".pth",
		"/tmp/x/model.SafeTensors":  ".safetensors",
		"vit.tar.gz":                ".tar.gz",
		"yolov8n.pt":                ".pt",
		"weights":                   ".bin",
		".tar.gz":                   ".gz",
		"odd.ext with space":        ".bin",
		"name.averyveryverylongext": ".bin",
	} {
		if got := weights.Ext(file); got != want {
			t.Errorf("Ext(%q) = %q, want %q", file, got, want)
		}
	}
}

func TestLocalName(t *testing.T) {
	sum := strings.Repeat("a", 64)
	for _, c := range []struct{ file, key, want string }{
		{"resnet18.pth", "torchvision/resnet18/" + sum + ".pth", "resnet18.pth"},
		{"../../etc/passwd", "torchvision/resnet18/" + sum + ".pth", sum + ".pth"},
		{".hidden", "torchvision/resnet18/" + sum + ".bin", sum + ".bin"},
		{"current.json", "torchvision/resnet18/" + sum + ".json", sum + ".json"},
	} {
		if got := weights.LocalName(weights.Record{File: c.file, Key: c.key, SHA256: sum}); got != c.want {
			t.Errorf("LocalName(file %q) = %q, want %q", c.file, got, c.want)
		}
	}
}

func TestOptionsAndModels(t *testing.T) {
	ctx := context.Background()
	if _, err := weights.Current(ctx, nil, resnet, weights.WithBucket("")); err == nil {
		t.Error("WithBucket(\"\") accepted")
	}
	for _, m := range []events.ModelRef{{Framework: "", Name: "x"}, {Framework: "timm", Name: "../x"}, {Framework: "a/b", Name: "x"}, {Framework: "timm", Name: "x/y"}} {
		if _, err := weights.Current(ctx, nil, m); !errors.Is(err, weights.ErrBadModel) {
			t.Errorf("Current(%q) = %v, want ErrBadModel", m, err)
		}
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// phases counts the progress calls of each phase and keeps the last.
type phases map[string][]weights.Progress

func (p phases) record(pr weights.Progress) { p[pr.Phase] = append(p[pr.Phase], pr) }

func (p phases) last(phase string) weights.Progress {
	if l := p[phase]; len(l) > 0 {
		return l[len(l)-1]
	}
	return weights.Progress{}
}

func TestInt_ImportCurrentFetch(t *testing.T) {
	testsupport.Integration(t)
	ctx := context.Background()
	m := testsupport.StartMinIO(t)
	minioReady(t, m)
	s := objstore.FromMinIO(m.Client)
	dir := t.TempDir()
	content := randomBytes(t, 3<<20)
	file := writeFile(t, dir, "resnet18-f37072fd.pth", content)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clock := weights.WithClock(func() time.Time { return at })

	// No bucket yet: no weights, and an empty list.
	if _, err := weights.Current(ctx, s, resnet); !errors.Is(err, weights.ErrNoWeights) {
		t.Fatalf("Current() without a bucket = %v, want ErrNoWeights", err)
	}
	if recs, err := weights.List(ctx, s); err != nil || len(recs) != 0 {
		t.Fatalf("List() without a bucket = %v, %v; want nothing", recs, err)
	}
	m.Bucket(t, weights.DefaultBucket)
	if _, err := weights.Current(ctx, s, resnet); !errors.Is(err, weights.ErrNoWeights) {
		t.Fatalf("Current() of an empty bucket = %v, want ErrNoWeights", err)
	}

	p := phases{}
	rec, err := weights.Import(ctx, s, resnet, file, clock, weights.WithProgress(p.record))
	if err != nil {
		t.Fatalf("Import() = %v", err)
	}
	sum := sha(content)
	want := weights.Record{
		Framework: "torchvision", Name: "resnet18", SHA256: sum, Size: int64(len(content)), File: "resnet18-f37072fd.pth",
		Key: "torchvision/resnet18/" + sum + ".pth", Imported: at,
		Object: objstore.URI{Bucket: "weights", Key: "torchvision/resnet18/" + sum + ".pth"},
	}
	if diff := cmp.Diff(want, rec); diff != "" {
		t.Errorf("Import() record (-want +got):\n%s", diff)
	}
	for _, ph := range []string{weights.PhaseHashing, weights.PhaseUploading} {
		if got := p.last(ph); got.Done != int64(len(content)) || got.Total != int64(len(content)) {
			t.Errorf("last %s progress = %+v, want all %d bytes", ph, got, len(content))
		}
	}
	stored, err := m.Client.GetObject(ctx, "weights", want.Key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(stored); err != nil {
		t.Fatal(err)
	}
	if sha(buf.Bytes()) != sum {
		t.Errorf("the stored object is not the file")
	}
	cur, err := weights.Current(ctx, s, resnet)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, cur); diff != "" {
		t.Errorf("Current() (-want +got):\n%s", diff)
	}

	// Fetch: the file under its imported name, checked.
	into := t.TempDir()
	p = phases{}
	got, frec, err := weights.Fetch(ctx, s, resnet, into, weights.WithProgress(p.record))
	if err != nil {
		t.Fatalf("Fetch() = %v", err)
	}
	if got != filepath.Join(into, "resnet18-f37072fd.pth") || frec.SHA256 != sum {
		t.Errorf("Fetch() = %s, %+v", got, frec)
	}
	if b, err := os.ReadFile(got); err != nil || !bytes.Equal(b, content) {
		t.Errorf("fetched file differs from the imported one: %v", err)
	}
	if p.last(weights.PhaseDownloading).Done != int64(len(content)) {
		t.Errorf("download progress = %+v", p[weights.PhaseDownloading])
	}
	// Fetched again: the file there is the right one, nothing is downloaded.
	p = phases{}
	if _, _, err := weights.Fetch(ctx, s, resnet, into, weights.WithProgress(p.record)); err != nil || len(p[weights.PhaseDownloading]) != 0 {
		t.Errorf("second Fetch() = %v, downloading %d times; want no download", err, len(p[weights.PhaseDownloading]))
	}

	// Imported again: nothing uploaded (the object is there), the record the same.
	p = phases{}
	if again, err := weights.Import(ctx, s, resnet, file, clock, weights.WithProgress(p.record)); err != nil || again.Key != want.Key {
		t.Errorf("Import() again = %+v, %v", again, err)
	}
	if n := len(p[weights.PhaseUploading]); n != 1 {
		t.Errorf("importing the same file again reported %d upload steps, want 1 (nothing sent)", n)
	}

	// A corrupted object (same size, other bytes) is refused: no file is left.
	bad := randomBytes(t, len(content))
	if _, err := m.Client.PutObject(ctx, "weights", want.Key, bytes.NewReader(bad), int64(len(bad)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	if _, _, err := weights.Fetch(ctx, s, resnet, empty); !errors.Is(err, weights.ErrDigestMismatch) || !strings.Contains(err.Error(), sum) {
		t.Errorf("Fetch() of a corrupted object = %v, want ErrDigestMismatch naming the imported sha256", err)
	}
	// A longer one too.
	long := append(append([]byte{}, content...), 'x')
	if _, err := m.Client.PutObject(ctx, "weights", want.Key, bytes.NewReader(long), int64(len(long)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := weights.Fetch(ctx, s, resnet, empty); !errors.Is(err, weights.ErrDigestMismatch) {
		t.Errorf("Fetch() of a longer object = %v, want ErrDigestMismatch", err)
	}
	if entries, err := os.ReadDir(empty); err != nil || len(entries) != 0 {
		t.Errorf("a refused download left %v (%v)", entries, err)
	}
	// A file there already but corrupt is downloaded again (and refused here).
	writeFile(t, empty, "resnet18-f37072fd.pth", bad)
	if _, _, err := weights.Fetch(ctx, s, resnet, empty); !errors.Is(err, weights.ErrDigestMismatch) {
		t.Errorf("Fetch() over a stale local file = %v, want the download checked", err)
	}

	// Another file becomes the current one; the first stays stored.
	other := writeFile(t, dir, "my-finetune.pt", randomBytes(t, 1000))
	rec2, err := weights.Import(ctx, s, resnet, other)
	if err != nil {
		t.Fatal(err)
	}
	if cur, err := weights.Current(ctx, s, resnet); err != nil || cur.SHA256 != rec2.SHA256 || cur.File != "my-finetune.pt" {
		t.Errorf("Current() after a second import = %+v, %v", cur, err)
	}
	if _, err := s.Stat(ctx, want.Object); err != nil {
		t.Errorf("the first file is gone: %v", err)
	}
	timm := events.ModelRef{Framework: "timm", Name: "resnet18"}
	if _, err := weights.Import(ctx, s, timm, other); err != nil {
		t.Fatal(err)
	}
	recs, err := weights.List(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range recs {
		names = append(names, r.Model().String()+" "+r.File)
	}
	if diff := cmp.Diff([]string{"timm/resnet18 my-finetune.pt", "torchvision/resnet18 my-finetune.pt"}, names); diff != "" {
		t.Errorf("List() (-want +got):\n%s", diff)
	}
}

func TestInt_ImportRefusals(t *testing.T) {
	testsupport.Integration(t)
	ctx := context.Background()
	m := testsupport.StartMinIO(t)
	minioReady(t, m)
	m.Bucket(t, weights.DefaultBucket)
	s := objstore.FromMinIO(m.Client)
	dir := t.TempDir()
	emptyFile := writeFile(t, dir, "empty.pt", nil)
	file := writeFile(t, dir, "w.pt", []byte("weights"))
	for _, c := range []struct {
		desc, file string
		model      events.ModelRef
		want       string
	}{
		{"a folder", dir, resnet, "it is a folder"},
		{"an empty file", emptyFile, resnet, "it is empty"},
		{"no such file", filepath.Join(dir, "nope.pt"), resnet, "no such file"},
		{"a bad model", file, events.ModelRef{Framework: "timm", Name: "../x"}, "not a usable model reference"},
	} {
		t.Run(c.desc, func(t *testing.T) {
			_, err := weights.Import(ctx, s, c.model, c.file)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.file) {
				t.Errorf("Import(%s) = %v, want an error naming the file and saying %q", c.file, err, c.want)
			}
		})
	}
	// A bucket that is not there: the store's answer, naming the file.
	if _, err := weights.Import(ctx, s, resnet, file, weights.WithBucket("nobucket")); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("Import() into a missing bucket = %v", err)
	}
	// A current.json pointing outside its model's folder is refused.
	for _, body := range []string{
		`{"framework":"torchvision","name":"resnet18","sha256":"` + strings.Repeat("a", 64) + `","size":7,"file":"w.pt","key":"timm/resnet18/x.pt"}`,
		`{"framework":"timm","name":"resnet18","sha256":"` + strings.Repeat("a", 64) + `","size":7,"file":"w.pt","key":"torchvision/resnet18/x.pt"}`,
		`{"framework":"torchvision","name":"resnet18","sha256":"nothex","size":7,"file":"w.pt","key":"torchvision/resnet18/x.pt"}`,
		`not json`,
	} {
		if _, err := m.Client.PutObject(ctx, "weights", "torchvision/resnet18/current.json", strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := weights.Current(ctx, s, resnet); !errors.Is(err, weights.ErrBadRecord) {
			t.Errorf("Current() of %s = %v, want ErrBadRecord", body, err)
		}
	}
}

// minioReady waits until MinIO's object layer answers (its health check
// answers before that, and StartMinIO with no bucket to make does not
// wait for it).
func minioReady(t *testing.T, m *testsupport.MinIO) {
	t.Helper()
	testsupport.Eventually(t, 30*time.Second, "MinIO's object layer", func() bool {
		_, err := m.Client.BucketExists(context.Background(), "probe")
		return err == nil
	})
}
