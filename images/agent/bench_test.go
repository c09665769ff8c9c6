package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"github.com/vision-platform/vp/internal/dataset"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/vision-platform/vp/events"
	"github.com/vision-platform/vp/internal/objstore"
	"github.com/vision-platform/vp/internal/testsupport"
)

// BenchmarkDownload compares the agent's dataset download (parallel, every
// file checked against the manifest) with minio-go's plain GetObject of the
// same objects one after another, in the same run: many small files, and a
// few large ones.
func BenchmarkDownload(b *testing.B) {
	m := testsupport.StartMinIO(b)
	m.Bucket(b, "datasets")
	sets := []struct {
		name  string
		files int
		size  int
	}{{"small-2000x16KiB", 2000, 16 << 10}, {"large-4x64MiB", 4, 64 << 20}}
	for _, s := range sets {
		dir := b.TempDir()
		buf := make([]byte, s.size)
		for i := 0; i < s.files; i++ {
			rand.Read(buf)
			p := filepath.Join(dir, "train", fmt.Sprintf("c%d", i%2), fmt.Sprintf("%05d.bin", i))
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, buf, 0o644)
		}
		manifest, digest, err := dataset.ManifestOf(context.Background(), dir)
		if err != nil {
			b.Fatal(err)
		}
		prefix := s.name + "/"
		m.PutDir(b, dir, "datasets", prefix)
		if _, err := m.Client.PutObject(context.Background(), "datasets", prefix+dataset.ManifestName, bytes.NewReader(manifest), int64(len(manifest)), minio.PutObjectOptions{}); err != nil {
			b.Fatal(err)
		}
		mf, err := dataset.ParseManifest(manifest)
		if err != nil {
			b.Fatal(err)
		}
		total := float64(s.files * s.size)
		b.Run(s.name+"/plain-GetObject", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				out := b.TempDir()
				for _, f := range mf.Files {
					obj, err := m.Client.GetObject(context.Background(), "datasets", prefix+f.Path, minio.GetObjectOptions{})
					if err != nil {
						b.Fatal(err)
					}
					dst := filepath.Join(out, f.Path)
					if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
						b.Fatal(err)
					}
					fh, err := os.Create(dst)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(fh, obj); err != nil {
						b.Fatal(err)
					}
					fh.Close()
					obj.Close()
				}
			}
			b.ReportMetric(total/(1<<20)/(b.Elapsed().Seconds()/float64(b.N)), "MB/s")
			b.ReportMetric(float64(s.files)/(b.Elapsed().Seconds()/float64(b.N)), "files/s")
		})
		b.Run(s.name+"/agent", func(b *testing.B) {
			ref := events.DatasetRef{Bucket: "datasets", Prefix: prefix, Digest: digest}
			for i := 0; i < b.N; i++ {
				if _, _, err := Download(context.Background(), objstore.FromMinIO(m.Client), ref, b.TempDir(), DownloadOptions{Workers: 8, Attempts: 3}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(total/(1<<20)/(b.Elapsed().Seconds()/float64(b.N)), "MB/s")
			b.ReportMetric(float64(s.files)/(b.Elapsed().Seconds()/float64(b.N)), "files/s")
		})
	}
	_ = time.Second
}
