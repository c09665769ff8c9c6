package assemble

import (
	"archive/zip"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/vision-platform/vp/images/imagespec"
	"github.com/vision-platform/vp/images/publish"
	"github.com/vision-platform/vp/images/wheel"
	"github.com/vision-platform/vp/local/ociregistry"
)

// BenchmarkFrameworks (make bench-frameworks) builds the real framework
// images (images/frameworks) from their locks, with the wheels PyPI serves,
// and measures in one run:
//   - each image's compressed size and the bytes of it shared with the
//     others, and the wheels each lock pins;
//   - the cold build of all of them from an empty layer cache (the wheels
//     already in the wheel store: downloading is not building), as MB/s of
//     layer bytes, against the ceiling of those same bytes: sha256 + pgzip
//     (as the builder compresses) + sha256 over each layer's uncompressed
//     tar, read from the page cache, and that ceiling plus inflating the
//     wheels' members (the builder inflates them; the ceiling does not);
//     VP_BENCH_ROUNDS rounds (default 3), each a cold build then the
//     ceilings, and the medians;
//   - the bytes the registry stores for all of them against the sum of
//     their sizes;
//   - a warm rebuild and push of all of them after one adapter file of the
//     SDK changed.
//
// The wheels come from the wheel store of vp images build's cache
// (~/.cache/vision-platform/images/wheels, or VP_BENCH_WHEELS), filled
// from PyPI where a wheel is missing: make images fills it. Without PyPI
// and without the wheels it skips, saying so.
func BenchmarkFrameworks(b *testing.B) {
	for i := 0; i < b.N; i++ {
		benchFrameworks(b)
	}
}

// frameworkBench is the state of one BenchmarkFrameworks run.
type frameworkBench struct {
	b     *testing.B
	specs map[string]*imagespec.Spec
	names []string
	store string // the wheel store, shared with vp images build
	dir   string
}

func benchFrameworks(b *testing.B) {
	ctx := context.Background()
	fb := &frameworkBench{b: b, dir: b.TempDir()}
	fb.specs = must[map[string]*imagespec.Spec](b)(imagespec.LoadDir(filepath.Join("..", "frameworks")))
	fb.names = slices.Sorted(maps.Keys(fb.specs))
	for _, n := range fb.names {
		if r := fb.specs[n].Base.Rootfs; r != "" {
			if _, err := os.Stat(fb.specs[n].Resolve(r)); err != nil {
				b.Skipf("%s: its root filesystem is missing (make images builds it): %v", n, err)
			}
		}
	}
	fb.store = os.Getenv("VP_BENCH_WHEELS")
	if fb.store == "" {
		home := must[string](b)(os.UserHomeDir())
		fb.store = filepath.Join(home, ".cache", "vision-platform", "images", "wheels")
	}
	sdk := fb.copySDK()
	wheels := fb.fetchAll(ctx)

	pretouch(b, filepath.Join(fb.dir, "pretouch"))
	b.ResetTimer()
	rounds := 3
	if v, err := strconv.Atoi(os.Getenv("VP_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	// Other work on the machine moves these figures: each round's build
	// and ceiling are taken minutes apart at most, and the medians are
	// compared.
	var colds, ceils, inflated, ratios, inflatedRatios []float64
	var cache *Cache
	var results map[string]*Result
	var layerBytes int64
	for i := 0; i < rounds; i++ {
		cacheDir := filepath.Join(fb.dir, fmt.Sprintf("cache%d", i))
		load := loadavg()
		var took time.Duration
		cache, results, took = fb.buildAll(ctx, cacheDir)
		var ceilTook time.Duration
		layerBytes, ceilTook = fb.ceilingOfLayers(results)
		inflateTook := fb.inflateWheels()
		colds = append(colds, mbps(layerBytes, took))
		ceils = append(ceils, mbps(layerBytes, ceilTook))
		inflated = append(inflated, mbps(layerBytes, ceilTook+inflateTook))
		ratios = append(ratios, colds[i]/ceils[i])
		inflatedRatios = append(inflatedRatios, colds[i]/inflated[i])
		b.Logf("round %d (load %s, then %s): cold build of %d images, %.2f GiB of layer tar in %s: %.0f MB/s; sha256+pgzip+sha256 of the same bytes %s: %.0f MB/s; with the wheels' members inflated (%s): %.0f MB/s",
			i+1, load, loadavg(), len(results), float64(layerBytes)/(1<<30), took.Round(time.Millisecond), colds[i],
			ceilTook.Round(time.Millisecond), ceils[i], inflateTook.Round(time.Millisecond), inflated[i])
		if i < rounds-1 {
			if err := os.RemoveAll(cacheDir); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(layerBytes)/(1<<30), "layer-tar-GiB")
	b.ReportMetric(median(colds), "cold-MB/s")
	b.ReportMetric(median(ceils), "ceiling-MB/s")
	b.ReportMetric(median(ratios), "cold/ceiling")
	b.ReportMetric(median(inflated), "ceiling+inflate-MB/s")
	b.ReportMetric(median(inflatedRatios), "cold/ceiling+inflate")

	sizes := fb.sizes(results, wheels)

	// Push all of them to a registry of their own.
	regDir := filepath.Join(fb.dir, "registry")
	reg := must[*ociregistry.Registry](b)(ociregistry.New(ctx, regDir))
	srv := httptest.NewServer(reg)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	pub := must[*publish.Publisher](b)(publish.New(publish.WithMountIndex(filepath.Join(fb.dir, "mounts.json"))))
	pushAll := func(results map[string]*Result) (pushed int64, took time.Duration) {
		start := time.Now()
		for _, n := range fb.names {
			ref := must[name.Reference](b)(name.ParseReference(host + "/vp/" + n + ":latest"))
			res, err := pub.Push(ctx, ref, results[n].Artifact)
			if err != nil {
				b.Fatal(err)
			}
			pushed += res.BytesPushed
		}
		return pushed, time.Since(start)
	}
	coldPushed, coldPush := pushAll(results)
	stored := must[int64](b)(dirSize(filepath.Join(regDir, "storage", "docker", "registry", "v2", "blobs")))
	b.Logf("cold push of %d images: %.2f GiB in %s; the registry stores %.2f GiB for images of %.2f GiB in all (%.1fx)",
		len(fb.names), float64(coldPushed)/(1<<30), coldPush.Round(time.Millisecond), float64(stored)/(1<<30), float64(sizes)/(1<<30), float64(sizes)/float64(stored))
	b.ReportMetric(float64(stored)/(1<<20), "registry-stored-MiB")
	b.ReportMetric(float64(sizes)/(1<<20), "images-sum-MiB")
	b.ReportMetric(float64(sizes)/float64(stored), "sharing-ratio")
	b.ReportMetric(coldPush.Seconds(), "cold-push-s")

	// Warm: one adapter file of the SDK changed.
	adapter := filepath.Join(sdk, "adapters", "timm_adapter.py")
	f := must[*os.File](b)(os.OpenFile(adapter, os.O_APPEND|os.O_WRONLY, 0))
	if _, err := f.WriteString("# changed by BenchmarkFrameworks\n"); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	bl := must[*Builder](b)(New(cache, fb.specs))
	bl.store = fb.store
	start := time.Now()
	warm := map[string]*Result{}
	built := 0
	for _, n := range fb.names {
		r, err := bl.Build(ctx, n)
		if err != nil {
			b.Fatal(err)
		}
		warm[n] = r
		built += r.Built
	}
	warmBuild := time.Since(start)
	warmPushed, warmPush := pushAll(warm)
	b.Logf("warm: timm_adapter.py changed: %d layer(s) built in %s, %d images pushed in %s, %d bytes pushed",
		built, warmBuild.Round(time.Millisecond), len(warm), warmPush.Round(time.Millisecond), warmPushed)
	b.ReportMetric(float64(built), "warm-layers-built")
	b.ReportMetric(warmBuild.Seconds(), "warm-build-s")
	b.ReportMetric((warmBuild + warmPush).Seconds(), "warm-build+push-s")
	b.ReportMetric(float64(warmPushed), "warm-bytes-pushed")
}

// copySDK points every layer that takes images/python/vp_sdk at a copy of
// it, so the warm rebuild can change an adapter file without touching the
// tree.
func (fb *frameworkBench) copySDK() string {
	b := fb.b
	src := must[string](b)(filepath.Abs(filepath.Join("..", "python", "vp_sdk")))
	dst := filepath.Join(fb.dir, "vp_sdk")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		b.Fatal(err)
	}
	found := 0
	for _, s := range fb.specs {
		for _, l := range s.Layers {
			if l.Dir != nil && must[string](b)(filepath.Abs(s.Resolve(l.Dir.Src))) == src {
				l.Dir.Src = dst
				found++
			}
		}
	}
	if found == 0 {
		b.Fatal("no spec takes images/python/vp_sdk")
	}
	return dst
}

// wheelsOf is what a spec's lock pins.
type wheelsOf struct {
	count int
	bytes int64
}

// fetchAll brings every pinned wheel into the store (from PyPI where it is
// missing) and returns, by spec, what its lock pins.
func (fb *frameworkBench) fetchAll(ctx context.Context) map[string]wheelsOf {
	b := fb.b
	bl := must[*Builder](b)(New(must[*Cache](b)(OpenCache(filepath.Join(fb.dir, "fetch"))), fb.specs))
	bl.store = fb.store
	out := map[string]wheelsOf{}
	for _, n := range fb.names {
		s := fb.specs[n]
		for _, l := range s.Layers {
			if l.Wheels == nil {
				continue
			}
			reqs, err := readLock(s, l.Wheels)
			if err != nil {
				b.Fatal(err)
			}
			pinned, err := bl.fetchWheels(ctx, s, l.Name, l.Wheels, reqs)
			if err != nil {
				b.Skipf("the wheels are not all in %s, and fetching them needs PyPI (make images fills the store): %v", fb.store, err)
			}
			w := out[n]
			for _, p := range pinned {
				w.count++
				w.bytes += p.size
			}
			out[n] = w
		}
	}
	return out
}

// buildAll builds every spec from an empty layer cache in dir.
func (fb *frameworkBench) buildAll(ctx context.Context, dir string) (*Cache, map[string]*Result, time.Duration) {
	b := fb.b
	cache := must[*Cache](b)(OpenCache(dir))
	bl := must[*Builder](b)(New(cache, fb.specs))
	bl.store = fb.store
	results := map[string]*Result{}
	start := time.Now()
	for _, n := range fb.names {
		r, err := bl.Build(ctx, n)
		if err != nil {
			b.Fatal(err)
		}
		results[n] = r
	}
	return cache, results, time.Since(start)
}

// ceilingOfLayers times the ceiling over the uncompressed tar of every
// distinct layer of the images, each first written to a file (untimed) and
// read back from the page cache, and returns their bytes and the time.
func (fb *frameworkBench) ceilingOfLayers(results map[string]*Result) (int64, time.Duration) {
	b := fb.b
	seen := map[v1.Hash]bool{}
	var total int64
	var took time.Duration
	tmp := filepath.Join(fb.dir, "layer.tar")
	for _, n := range fb.names {
		layers := must[[]v1.Layer](b)(results[n].Artifact.Image().Layers())
		for _, l := range layers {
			d := must[v1.Hash](b)(l.Digest())
			if seen[d] {
				continue
			}
			seen[d] = true
			rc := must[io.ReadCloser](b)(l.Uncompressed())
			f := must[*os.File](b)(os.Create(tmp))
			n, err := io.CopyBuffer(f, rc, make([]byte, 1<<20))
			if err != nil {
				b.Fatal(err)
			}
			if err := rc.Close(); err != nil {
				b.Fatal(err)
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
			total += n
			took += ceilingOf(b, true, func(w io.Writer) error {
				in, err := os.Open(tmp)
				if err != nil {
					return err
				}
				defer in.Close()
				_, err = io.CopyBuffer(w, struct{ io.Reader }{in}, make([]byte, 1<<20))
				return err
			})
		}
	}
	if err := os.Remove(tmp); err != nil {
		b.Fatal(err)
	}
	return total, took
}

// inflateWheels times reading every member of every distinct wheel the
// locks pin, inflated, from the store: work the builder does for the wheel
// layers beside the ceiling's (wheel builders deflate their members).
func (fb *frameworkBench) inflateWheels() time.Duration {
	b := fb.b
	seen := map[string]bool{}
	buf := make([]byte, 1<<20)
	start := time.Now()
	for _, n := range fb.names {
		s := fb.specs[n]
		for _, l := range s.Layers {
			if l.Wheels == nil {
				continue
			}
			for _, r := range must[[]wheel.Requirement](b)(readLock(s, l.Wheels)) {
				matches := must[[]string](b)(filepath.Glob(filepath.Join(fb.store, "*", r.Hashes[0], "*.whl")))
				if len(matches) != 1 || seen[matches[0]] {
					continue
				}
				seen[matches[0]] = true
				zr := must[*zip.ReadCloser](b)(zip.OpenReader(matches[0]))
				for _, f := range zr.File {
					rc := must[io.ReadCloser](b)(f.Open())
					if _, err := io.CopyBuffer(io.Discard, rc, buf); err != nil {
						b.Fatal(err)
					}
					if err := rc.Close(); err != nil {
						b.Fatal(err)
					}
				}
				if err := zr.Close(); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	return time.Since(start)
}

// loadavg is the machine's load over the last minute, or "?".
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// sizes logs each image's compressed size, the part of it shared with
// the other images and the wheels its lock pins, and returns the sum of
// the images' sizes (layers, config and manifest).
func (fb *frameworkBench) sizes(results map[string]*Result, wheels map[string]wheelsOf) int64 {
	b := fb.b
	users := map[string]int{} // layer digest -> images holding it
	for _, n := range fb.names {
		for _, l := range results[n].Layers {
			users[l.Digest]++
		}
	}
	var sum, distinct int64
	counted := map[string]bool{}
	b.Logf("%-16s %7s %11s %11s %11s %s", "image", "layers", "size", "shared", "own", "wheels pinned")
	for _, n := range fb.names {
		r := results[n]
		img := r.Artifact.Image()
		m := must[*v1.Manifest](b)(img.Manifest())
		raw := must[[]byte](b)(img.RawManifest())
		size := m.Config.Size + int64(len(raw))
		distinct += m.Config.Size + int64(len(raw))
		var shared int64
		for _, l := range r.Layers {
			size += l.Size
			if users[l.Digest] > 1 {
				shared += l.Size
			}
			if !counted[l.Digest] {
				counted[l.Digest] = true
				distinct += l.Size
			}
		}
		sum += size
		w := "-"
		if ws, ok := wheels[n]; ok {
			w = fmt.Sprintf("%d wheels, %.2f GiB", ws.count, float64(ws.bytes)/(1<<30))
		}
		b.Logf("%-16s %7d %8.0f MiB %8.0f MiB %8.0f MiB %s", n, len(r.Layers), float64(size)/(1<<20), float64(shared)/(1<<20), float64(size-shared)/(1<<20), w)
	}
	b.Logf("%d images: %.2f GiB in all, %.2f GiB of distinct blobs", len(fb.names), float64(sum)/(1<<30), float64(distinct)/(1<<30))
	b.ReportMetric(float64(distinct)/(1<<20), "distinct-blobs-MiB")
	return sum
}
