package assemble

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/vision-platform/vp/images/imagespec"
	"github.com/vision-platform/vp/images/publish"
	"github.com/vision-platform/vp/local/ociregistry"
)

// The image benchmarks (make bench-images) measure, in one run:
//   - the ceiling: sha256 + gzip + sha256 of the same bytes, with the
//     compressor we use (pgzip on every core) and with compress/gzip
//     (go-containerregistry's default);
//   - a cold build of a spec with a synthetic 1 GiB wheel, as MB/s of
//     layer bytes;
//   - a warm rebuild after one adapter file changed, and the bytes its
//     push uploads;
//   - registry bytes stored for three framework images sharing that wheel
//     against the sum of their sizes;
//   - the same image built with docker build (FROM scratch, the same files
//     as COPY layers) and pushed to the same kind of registry, cold and
//     warm.

// benchWheelBytes is the synthetic wheel's size: 1 GiB, or
// VP_BENCH_WHEEL_MIB (2048 checks that memory stays flat for a 2 GiB layer).
var benchWheelBytes int64 = 1 << 30

func init() {
	if v, err := strconv.Atoi(os.Getenv("VP_BENCH_WHEEL_MIB")); err == nil && v >= 8 {
		benchWheelBytes = int64(v) << 20
	}
}

// fill writes n bytes that compress about 2:1, like shared libraries.
func fill(w io.Writer, n int64, seed uint64) error {
	r := rand.NewChaCha8([32]byte{byte(seed)})
	buf := make([]byte, 1<<20)
	for n > 0 {
		r.Read(buf[:len(buf)/2])
		clear(buf[len(buf)/2:])
		k := int64(len(buf))
		if n < k {
			k = n
		}
		if _, err := w.Write(buf[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// bigWheel writes a wheel of ~1 GiB (8 members of 128 MiB) and returns its
// path and sha256. Its members are stored, or deflated (at level 1) as
// wheel builders write them.
func bigWheel(b *testing.B, dir string, deflate bool) (string, string) {
	p := filepath.Join(dir, "torch-2.1.0-cp311-cp311-linux_x86_64.whl")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	zw := zip.NewWriter(f)
	method := zip.Store
	if deflate {
		method = zip.Deflate
		zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestSpeed) })
	}
	var rows [][]string
	add := func(name string, n int64, seed uint64, data []byte) {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method})
		if err != nil {
			b.Fatal(err)
		}
		h := sha256.New()
		mw := io.MultiWriter(w, h)
		if data != nil {
			if _, err := mw.Write(data); err != nil {
				b.Fatal(err)
			}
			n = int64(len(data))
		} else if err := fill(mw, n, seed); err != nil {
			b.Fatal(err)
		}
		rows = append(rows, []string{name, "sha256=" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)), strconv.FormatInt(n, 10)})
	}
	for i := 0; i < 8; i++ {
		add(fmt.Sprintf("torch/lib/libtorch_part%d.so", i), benchWheelBytes/8, uint64(i+1), nil)
	}
	add("torch/__init__.py", 0, 0, []byte("import torch._C\n"))
	add("torch-2.1.0.dist-info/WHEEL", 0, 0, []byte("Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp311-cp311-linux_x86_64\n"))
	var rec bytes.Buffer
	if err := csv.NewWriter(&rec).WriteAll(append(rows, []string{"torch-2.1.0.dist-info/RECORD", "", ""})); err != nil {
		b.Fatal(err)
	}
	w := must[io.Writer](b)(zw.CreateHeader(&zip.FileHeader{Name: "torch-2.1.0.dist-info/RECORD", Method: zip.Store}))
	if _, err := w.Write(rec.Bytes()); err != nil {
		b.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	sum, err := fileSHA(p)
	if err != nil {
		b.Fatal(err)
	}
	return p, sum
}

func fileSHA(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }

// ceiling measures sha256 + compress + sha256 over the synthetic bytes.
func ceiling(b *testing.B, parallel bool) float64 {
	took := ceilingOf(b, parallel, func(w io.Writer) error {
		for i := 0; i < 8; i++ {
			if err := fill(w, benchWheelBytes/8, uint64(i+1)); err != nil {
				return err
			}
		}
		return nil
	})
	return mbps(benchWheelBytes, took)
}

// ceilingOf times sha256 + compress + sha256 over the bytes src writes:
// the work no build of a layer of those bytes can skip. parallel is the
// builder's compressor (pgzip on every core), else compress/gzip.
func ceilingOf(b *testing.B, parallel bool, src func(w io.Writer) error) time.Duration {
	start := time.Now()
	digest := sha256.New()
	var zw io.WriteCloser
	if parallel {
		pz, err := newCompressor(digest)
		if err != nil {
			b.Fatal(err)
		}
		zw = pz
	} else {
		zw = must[*gzip.Writer](b)(gzip.NewWriterLevel(digest, gzip.BestSpeed))
	}
	diff := sha256.New()
	if err := src(io.MultiWriter(zw, diff)); err != nil {
		b.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// profileTo writes a CPU profile of what runs until stop to path (nothing
// when path is empty): VP_BENCH_CPUPROFILE profiles the cold build alone.
func profileTo(b *testing.B, path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// pretouch writes and removes 2 GiB. A virtual machine backs its guest's
// memory on first touch: here the first 512 MiB written to the page cache
// cost about 1.1 ns a byte, eight times what a write costs afterwards.
// Whichever measurement first writes fresh pages would pay that once;
// after this none does.
func pretouch(b *testing.B, p string) {
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	if err := fill(f, 2<<30, 99); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		b.Fatal(err)
	}
}

// ceilingWithIO measures the work no correct build of the wheel's layer
// can skip: the wheel read and hashed for its lock beside the ceiling's
// sha256 + compress + sha256 of its bytes, the compressed bytes written to
// a new file. It is the ceiling plus the I/O, and the lock's hash pass.
func ceilingWithIO(b *testing.B, wheel, out string) float64 {
	start := time.Now()
	locked := make(chan error, 1)
	go func() {
		_, err := fileSHA(wheel)
		locked <- err
	}()
	f, err := os.Create(out)
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(out)
	digest := sha256.New()
	zw, err := newCompressor(io.MultiWriter(f, digest))
	if err != nil {
		b.Fatal(err)
	}
	in, err := os.Open(wheel)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	diff := sha256.New()
	if _, err := io.CopyBuffer(io.MultiWriter(zw, diff), struct{ io.Reader }{in}, make([]byte, 1<<20)); err != nil {
		b.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	if err := <-locked; err != nil {
		b.Fatal(err)
	}
	return mbps(benchWheelBytes, time.Since(start))
}

// coldDeflated builds, three times from a fresh cache, the spec of a wheel
// whose members are deflated (as wheel builders write them: the build
// inflates them too) and returns the median MB/s of layer bytes.
func coldDeflated(b *testing.B, dir string) float64 {
	house := filepath.Join(dir, "wheels")
	if err := os.MkdirAll(house, 0o755); err != nil {
		b.Fatal(err)
	}
	_, sum := bigWheel(b, house, true)
	writeFile(b, filepath.Join(dir, "torch.lock"), "torch==2.1.0 --hash=sha256:"+sum+"\n", 0o644)
	writeFile(b, filepath.Join(dir, "torch.yaml"), `name: torch
base: {scratch: true}
layers:
  - name: wheels
    wheels: {lock: torch.lock, wheelhouse: wheels, sitePackages: /opt/vp/site-packages, scripts: /opt/vp/bin}
`, 0o644)
	specs, err := imagespec.LoadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	var runs []float64
	for i := 0; i < 3; i++ {
		cacheDir := filepath.Join(dir, "cache")
		_, _, took := coldBuild(b, specs, cacheDir, "torch")
		runs = append(runs, mbps(benchWheelBytes, took))
		b.Logf("cold build of the deflated wheel %d: %.0f MB/s", i+1, runs[i])
		if err := os.RemoveAll(cacheDir); err != nil {
			b.Fatal(err)
		}
	}
	return median(runs)
}

// coldBuild builds spec name from a new cache in cacheDir and times it.
func coldBuild(b *testing.B, specs map[string]*imagespec.Spec, cacheDir, name string) (*Cache, *Result, time.Duration) {
	cache, err := OpenCache(cacheDir)
	if err != nil {
		b.Fatal(err)
	}
	bl, err := New(cache, specs)
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	start := time.Now()
	r, err := bl.Build(context.Background(), name)
	if err != nil {
		b.Fatal(err)
	}
	return cache, r, time.Since(start)
}

// dirSize is the bytes of the files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	return n, err
}

// peakHeap samples the heap in use until stop is called.
func peakHeap() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		var m runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
			}
		}
	}()
	return func() uint64 { close(done); return peak.Load() }
}

func BenchmarkImages(b *testing.B) {
	for i := 0; i < b.N; i++ {
		benchImages(b)
	}
}

func benchImages(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	house := filepath.Join(dir, "wheels")
	if err := os.MkdirAll(house, 0o755); err != nil {
		b.Fatal(err)
	}
	wheelPath, torchSum := bigWheel(b, house, false)
	for _, fw := range []string{"timm", "ultralytics", "huggingface"} {
		writeFile(b, filepath.Join(dir, fw+".lock"), "torch==2.1.0 --hash=sha256:"+torchSum+"\n", 0o644)
		writeFile(b, filepath.Join(dir, "adapters", fw+".py"), "# "+fw+" adapter\n", 0o644)
		writeFile(b, filepath.Join(dir, fw+".yaml"), fmt.Sprintf(`name: %s
base: {scratch: true}
layers:
  - name: wheels
    wheels: {lock: %s.lock, wheelhouse: wheels, sitePackages: /opt/vp/site-packages, scripts: /opt/vp/bin}
  - name: adapter
    file: {src: adapters/%s.py, dest: /opt/vp/adapters/%s.py}
`, fw, fw, fw, fw), 0o644)
	}
	specs, err := imagespec.LoadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	regDir := filepath.Join(dir, "registry")
	reg, err := ociregistry.New(ctx, regDir)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	pub, err := publish.New(publish.WithMountIndex(filepath.Join(dir, "mounts.json")))
	if err != nil {
		b.Fatal(err)
	}
	push := func(r *Result, repo string) *publish.Result {
		ref := must[name.Reference](b)(name.ParseReference(host + "/" + repo + ":latest"))
		res, err := pub.Push(ctx, ref, r.Artifact)
		if err != nil {
			b.Fatal(err)
		}
		return res
	}

	pretouch(b, filepath.Join(dir, "pretouch"))
	b.ResetTimer()
	// The ceiling and the cold build take turns, three times each, and
	// the medians are compared: this machine's figures drift by a quarter
	// from one minute to the next (fresh page-cache pages are dear here).
	var ceils, floors, colds []float64
	var cache *Cache
	var timm *Result
	var coldTook time.Duration
	var heap uint64
	for i := 0; i < 3; i++ {
		ceils = append(ceils, ceiling(b, true))
		stopHeap := peakHeap()
		stopProfile := func() {}
		if i == 0 {
			stopProfile = profileTo(b, os.Getenv("VP_BENCH_CPUPROFILE"))
		}
		cache, timm, coldTook = coldBuild(b, specs, filepath.Join(dir, fmt.Sprintf("cache%d", i)), "timm")
		stopProfile()
		heap = max(heap, stopHeap())
		colds = append(colds, mbps(benchWheelBytes, coldTook))
		floors = append(floors, ceilingWithIO(b, wheelPath, filepath.Join(dir, "floor.gz")))
		b.Logf("cold build %d: %.0f MB/s, ceiling %.0f MB/s, ceiling with I/O %.0f MB/s", i+1, colds[i], ceils[i], floors[i])
		if i < 2 {
			if err := os.RemoveAll(filepath.Join(dir, fmt.Sprintf("cache%d", i))); err != nil {
				b.Fatal(err)
			}
		}
	}
	ceil, floor, cold := median(ceils), median(floors), median(colds)
	ceilStd := ceiling(b, false)
	start := time.Now()
	stopHeap := peakHeap()
	pushed := push(timm, "vp/timm")
	coldTotal := coldTook + time.Since(start)
	// The registry runs in this process: its memory is counted too.
	b.ReportMetric(float64(stopHeap())/(1<<20), "cold-push-peak-heap-MiB")
	b.ReportMetric(ceil, "ceiling-MB/s")
	b.ReportMetric(ceilStd, "ceiling-stdgzip-MB/s")
	b.ReportMetric(cold, "cold-MB/s")
	b.ReportMetric(cold/ceil, "cold/ceiling")
	b.ReportMetric(floor, "ceiling-with-io-MB/s")
	b.ReportMetric(cold/floor, "cold/ceiling-with-io")
	deflated := coldDeflated(b, filepath.Join(dir, "deflated"))
	b.ReportMetric(deflated, "cold-deflated-wheel-MB/s")
	b.ReportMetric(deflated/ceil, "cold-deflated-wheel/ceiling")
	b.ReportMetric(float64(heap)/(1<<20), "cold-peak-heap-MiB")
	b.ReportMetric(coldTotal.Seconds(), "cold-build+push-s")
	b.Logf("cold: %d layers, %.1f MiB pushed", len(timm.Layers), float64(pushed.BytesPushed)/(1<<20))

	// Warm: one adapter file changed.
	writeFile(b, filepath.Join(dir, "adapters", "timm.py"), "# timm adapter, v2\n", 0o644)
	bl := must[*Builder](b)(New(cache, specs))
	start = time.Now()
	warm, err := bl.Build(ctx, "timm")
	if err != nil {
		b.Fatal(err)
	}
	warmBuild := time.Since(start)
	warmPush := push(warm, "vp/timm")
	warmTotal := time.Since(start)
	b.ReportMetric(warmBuild.Seconds(), "warm-build-s")
	b.ReportMetric(warmTotal.Seconds(), "warm-build+push-s")
	b.ReportMetric(float64(warm.Built), "warm-layers-built")
	b.ReportMetric(float64(warmPush.BytesPushed), "warm-bytes-pushed")

	// Sharing: the other two frameworks.
	var sum int64
	for _, fw := range []string{"timm", "ultralytics", "huggingface"} {
		r, err := bl.Build(ctx, fw)
		if err != nil {
			b.Fatal(err)
		}
		push(r, "vp/"+fw)
		m := must[*v1.Manifest](b)(r.Artifact.Image().Manifest())
		raw := must[[]byte](b)(r.Artifact.RawManifest())
		sum += m.Config.Size + int64(len(raw))
		for _, l := range m.Layers {
			sum += l.Size
		}
	}
	stored := must[int64](b)(dirSize(filepath.Join(regDir, "storage", "docker", "registry", "v2", "blobs")))
	b.ReportMetric(float64(stored)/(1<<20), "registry-stored-MiB")
	b.ReportMetric(float64(sum)/(1<<20), "images-sum-MiB")
	b.ReportMetric(float64(sum)/float64(stored), "sharing-ratio")

	// docker build of the same files, FROM scratch, one COPY per layer.
	if os.Getenv("VP_BENCH_SKIP_DOCKER") != "" {
		b.Log("docker comparison skipped (VP_BENCH_SKIP_DOCKER)")
		return
	}
	if _, err := exec.LookPath("docker"); err != nil {
		b.Fatalf("docker is needed for the comparison: %v", err)
	}
	ctxDir := filepath.Join(dir, "docker")
	var dockerfile strings.Builder
	dockerfile.WriteString("FROM scratch\n")
	layers := must[[]v1.Layer](b)(warm.Artifact.Image().Layers())
	for i, l := range layers {
		sub := filepath.Join(ctxDir, fmt.Sprintf("layer%d", i))
		rc, err := l.Uncompressed()
		if err != nil {
			b.Fatal(err)
		}
		if err := untar(rc, sub); err != nil {
			b.Fatal(err)
		}
		if err := rc.Close(); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&dockerfile, "COPY layer%d/ /\n", i)
	}
	writeFile(b, filepath.Join(ctxDir, "Dockerfile"), dockerfile.String(), 0o644)
	tag := host + "/docker/timm:latest"
	docker := func(args ...string) {
		out, err := exec.Command("docker", args...).CombinedOutput()
		if err != nil {
			b.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	defer docker("rmi", "-f", tag)
	start = time.Now()
	docker("build", "--no-cache", "-q", "-t", tag, ctxDir)
	dockerColdBuild := time.Since(start)
	docker("push", "-q", tag)
	dockerCold := time.Since(start)
	adapter := filepath.Join(ctxDir, fmt.Sprintf("layer%d", len(layers)-1), "opt/vp/adapters/timm.py")
	writeFile(b, adapter, "# timm adapter, v3\n", 0o644)
	start = time.Now()
	docker("build", "-q", "-t", tag, ctxDir)
	docker("push", "-q", tag)
	dockerWarm := time.Since(start)
	b.ReportMetric(dockerColdBuild.Seconds(), "docker-cold-build-s")
	b.ReportMetric(dockerCold.Seconds(), "docker-cold-build+push-s")
	b.ReportMetric(dockerWarm.Seconds(), "docker-warm-build+push-s")
	b.ReportMetric(dockerCold.Seconds()/coldTotal.Seconds(), "docker/ours-cold")
	b.ReportMetric(dockerWarm.Seconds()/warmTotal.Seconds(), "docker/ours-warm")
}

func untar(r io.Reader, dst string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p := filepath.Join(dst, h.Name)
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeReg:
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fs.FileMode(h.Mode))
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		}
	}
}
